"""The same filters give the same records, in the same order, and the same counts for charts,
from SQLite and Elasticsearch.

A few thousand generated records go to both stores; hundreds of generated filter combinations
are compared page by page, by cursor, and as timelines and top values. Timestamps collide on
purpose (many records share a millisecond) so the id tie-breaker is exercised; a tenth of the
records spread over three months, so that several monthly indices answer together.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from auditwire import Actor, AuditQuery, AuditRecord, SQLiteStore, Target
from auditwire.aggregation import INTERVALS, TOP_FIELDS
from auditwire.query import Cursor
from auditwire.stores.elasticsearch import ElasticsearchStore

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
ACTIONS = ["login", "login_failed", "user.invited", "api_key.rotated", "export.created"]
CATEGORIES = {
    "login": "authentication",
    "login_failed": "authentication",
    "user.invited": "user",
    "api_key.rotated": "api_key",
    "export.created": "export",
}
USERS = [(f"usr_{i}", f"user{i}@acme.test") for i in range(12)]
TENANTS = ["acme", "globex", None]
IPS = [
    "203.0.113.5",
    "203.0.113.77",
    "198.51.100.9",
    "2001:db8::1",
    "2001:db8:1::9",
    "::ffff:198.51.100.10",  # an IPv4 address written the IPv6 way
    "::ffff:203.0.113.200",
    "::1",
    "0.0.0.0",
    None,
]
#: CIDRs at the edges: every address, each family whole, the IPv4-mapped block and part of
#: it, single addresses in both spellings.
NETWORKS = [
    "203.0.113.0/24",
    "2001:db8::/32",
    "198.51.100.9",
    "::/0",
    "0.0.0.0/0",
    "::ffff:0:0/96",
    "::ffff:198.51.100.0/120",
    "::/1",
    "198.51.100.10",
    "::ffff:203.0.113.5",
    "::1/128",
]
TARGET_TYPES = ["user", "api_key", "webhook_endpoint"]


def generate(rng: random.Random, count: int) -> list[AuditRecord]:
    records = []
    for _ in range(count):
        action = rng.choice(ACTIONS)
        user_id, email = rng.choice(USERS)
        target_type = rng.choice(TARGET_TYPES)
        records.append(
            AuditRecord(
                action=action,
                category=CATEGORIES[action],
                actor=Actor(type="user", id=user_id if rng.random() < 0.8 else None, email=email),
                target=Target(target_type, f"{target_type}_{rng.randrange(20)}")
                if rng.random() < 0.7
                else None,
                outcome=rng.choice(["success", "success", "failure", "error"]),
                ip_address=rng.choice(IPS),
                tenant=rng.choice(TENANTS),
                timestamp=T0 + timedelta(milliseconds=rng.randrange(0, 40_000) * 250)
                if rng.random() < 0.9
                else T0 + timedelta(minutes=rng.randrange(0, 90 * 24 * 60)),
            )
        )
    return records


def random_query(rng: random.Random, limit: int) -> AuditQuery:
    def some(values: list[str], most: int = 3) -> tuple[str, ...]:
        return tuple(rng.sample(values, rng.randint(1, most))) if rng.random() < 0.3 else ()

    start = T0 + timedelta(hours=rng.uniform(0, 2)) if rng.random() < 0.3 else None
    end = start + timedelta(hours=rng.uniform(0.1, 2)) if start and rng.random() < 0.5 else None
    return AuditQuery(
        actions=some(ACTIONS),
        categories=some(sorted(set(CATEGORIES.values())), 2),
        users=some([u for pair in USERS for u in pair], 4),
        actor_ids=some([u for u, _ in USERS], 3),
        target_types=some(TARGET_TYPES, 2),
        target_ids=some([f"user_{i}" for i in range(20)], 5),
        outcomes=some(["success", "failure", "error"], 2),
        source_ips=some(NETWORKS, 2),
        tenant=rng.choice(TENANTS) if rng.random() < 0.4 else None,
        start=start,
        end=end,
        limit=limit,
    )


@pytest.fixture(scope="module")
def stores(
    es_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SQLiteStore, ElasticsearchStore]]:
    from elasticsearch import Elasticsearch

    records = generate(random.Random(20241122), 3000)
    sqlite = SQLiteStore(Path(tmp_path_factory.mktemp("diff")) / "audit.db")
    sqlite.write(records)
    client = Elasticsearch(es_url, request_timeout=60)
    es = ElasticsearchStore(client, prefix="test-differential")
    es.setup()
    es.write(records)
    es.refresh_indices()
    yield sqlite, es
    names = list(client.indices.get(index=es.read_pattern).body)
    client.indices.delete(index=",".join(names))
    client.indices.delete_index_template(name=es.prefix)
    client.close()


def ids(records: list[AuditRecord]) -> list[str]:
    return [r.id for r in records]


def test_both_stores_hold_the_same_records(stores: tuple[SQLiteStore, ElasticsearchStore]) -> None:
    sqlite, es = stores
    assert sqlite.count() == es.count() == 3000


@pytest.mark.parametrize("network", NETWORKS)
def test_every_cidr_gets_one_answer(
    stores: tuple[SQLiteStore, ElasticsearchStore], network: str
) -> None:
    sqlite, es = stores
    query = AuditQuery(source_ips=(network,), limit=1000)
    expected = sqlite.page(query)
    assert expected.total > 0, network  # each network holds some of the generated records
    assert es.page(query).total == expected.total, network
    assert ids(es.search(query)) == ids(sqlite.search(query)), network


def test_pages_agree(stores: tuple[SQLiteStore, ElasticsearchStore]) -> None:
    sqlite, es = stores
    rng = random.Random(7)
    matched = 0
    for _ in range(200):
        query = random_query(rng, limit=rng.choice([5, 20, 50]))
        for page in (1, 2, 3):
            expected = sqlite.page(query, page)
            found = es.page(query, page)
            assert ids(found.records) == ids(expected.records), (query, page)
            assert found.total == expected.total, query
        matched += expected.total > 0
    assert matched > 50  # the generated filters are not all empty


def test_cursors_agree_to_the_end(stores: tuple[SQLiteStore, ElasticsearchStore]) -> None:
    sqlite, es = stores
    rng = random.Random(11)
    for _ in range(60):
        query = random_query(rng, limit=rng.choice([7, 25, 100]))
        walked: dict[str, list[str]] = {}
        for name, store in (("sqlite", sqlite), ("elasticsearch", es)):
            seen: list[str] = []
            current = query
            while True:
                batch = store.search(current)
                seen += ids(batch)
                if len(batch) < current.limit:
                    break
                cursor = Cursor.of(batch[-1]).encode()
                current = replace(query, after=Cursor.decode(cursor))
            walked[name] = seen
        assert walked["sqlite"] == walked["elasticsearch"], query
        assert len(walked["sqlite"]) == sqlite.count(query)
        assert len(set(walked["sqlite"])) == len(walked["sqlite"])  # no record twice


def test_aggregations_agree(stores: tuple[SQLiteStore, ElasticsearchStore]) -> None:
    """Timelines (each interval) and top values (each field, sizes that cut through ties)
    give the same buckets from both stores, and a timeline counts every matching record."""
    sqlite, es = stores
    rng = random.Random(13)
    counted = 0
    for n in range(150):
        query = random_query(rng, limit=50)
        interval = list(INTERVALS)[n % len(INTERVALS)]
        expected = sqlite.timeline(query, interval)
        assert es.timeline(query, interval) == expected, (query, interval)
        assert sum(bucket.total for bucket in expected) == sqlite.count(query)
        field = TOP_FIELDS[n % len(TOP_FIELDS)]
        size = rng.choice([1, 3, 10, 100])
        top = sqlite.top(query, field, size)
        assert es.top(query, field, size) == top, (query, field, size)
        counted += bool(top)
    assert counted > 50
