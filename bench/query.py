"""Query latency, the viewer's first page and the export rate over a million records, on
SQLite and on Elasticsearch.

    python bench/query.py [--records 1000000] [--repeat 30] [--es-url URL]

Writes the same generated records to a fresh SQLite file and to Elasticsearch (the test
engine, started here, unless ``--es-url`` names a cluster), then times typical dashboard
queries — first pages with totals, filtered by the products' filters — and a cursor page deep
in the listing, and the server time of the viewer's first page with its five charts (queries
and rendering, as a request spends it), reporting p50/p95 in milliseconds per store; and the
export rate (NDJSON, records per second) of a filter matching about a tenth of the records.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.engine import cluster  # noqa: E402

from auditwire import Actor, AuditQuery, AuditRecord, SQLiteStore, Target  # noqa: E402
from auditwire.listing.export import export  # noqa: E402
from auditwire.listing.viewer import Viewer  # noqa: E402
from auditwire.query import Cursor  # noqa: E402
from auditwire.stores.base import Store  # noqa: E402
from auditwire.stores.elasticsearch import ElasticsearchStore  # noqa: E402

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
ACTIONS = {
    "login": "authentication",
    "login_failed": "authentication",
    "logout": "authentication",
    "user.invited": "user",
    "user.role_edited": "user",
    "api_key.rotated": "api_key",
    "webhook_endpoint.updated": "webhook_endpoint",
    "export.created": "export",
}
TENANTS = [f"tenant-{i}" for i in range(20)]


def generate(count: int, seed: int = 1) -> Iterator[AuditRecord]:
    """``count`` records over 90 days, 20 tenants, 5,000 users, a realistic action mix."""
    rng = random.Random(seed)
    actions = list(ACTIONS)
    weights = [40, 8, 30, 3, 2, 2, 2, 1]
    for _ in range(count):
        action = rng.choices(actions, weights)[0]
        user = rng.randrange(5000)
        yield AuditRecord(
            action=action,
            category=ACTIONS[action],
            actor=Actor(type="user", id=f"usr_{user}", email=f"user{user}@example.test"),
            target=Target("user", f"usr_{rng.randrange(5000)}") if rng.random() < 0.3 else None,
            outcome="failure" if action == "login_failed" else "success",
            ip_address=f"198.51.{rng.randrange(256)}.{rng.randrange(256)}",
            tenant=rng.choice(TENANTS),
            timestamp=T0 + timedelta(seconds=rng.randrange(90 * 86400)),
        )


def load(stores: dict[str, Store], count: int) -> None:
    batch: list[AuditRecord] = []
    started = time.perf_counter()
    for n, record in enumerate(generate(count), 1):
        batch.append(record)
        if len(batch) == 5000:
            for store in stores.values():
                store.write(batch)
            batch = []
            if n % 100_000 == 0:
                print(f"  loaded {n:,} ({time.perf_counter() - started:.0f} s)", flush=True)
    for store in stores.values():
        store.write(batch)


def percentiles(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    run()  # warm
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def measure(url: str, args: argparse.Namespace) -> None:
    from elasticsearch import Elasticsearch

    workdir = Path(tempfile.mkdtemp(prefix="auditwire-bench-"))
    sqlite = SQLiteStore(workdir / "audit.db")
    es = ElasticsearchStore(Elasticsearch(url, request_timeout=120), prefix="bench-query")
    es.setup()
    stores: dict[str, Store] = {"sqlite": sqlite, "elasticsearch": es}
    print(f"loading {args.records:,} records into both stores ...", flush=True)
    load(stores, args.records)
    es.refresh_indices()
    es.client.indices.forcemerge(index=es.read_pattern, max_num_segments=1)
    es.refresh_indices()

    day = T0 + timedelta(days=45)
    queries = {
        "first page, no filter (with total)": AuditQuery(limit=20),
        "tenant + failed logins": AuditQuery(
            tenant="tenant-3", actions=("login_failed",), outcomes=("failure",), limit=20
        ),
        "users (id or email) + one day": AuditQuery(
            users=("usr_42", "user77@example.test"), start=day, end=day + timedelta(days=1)
        ),
        "log types + CIDR": AuditQuery(
            categories=("api_key", "webhook_endpoint"), source_ips=("198.51.7.0/24",)
        ),
    }
    deep_after = sqlite.page(AuditQuery(limit=1), args.records // 2).records[0]
    deep = AuditQuery(limit=50, after=Cursor.of(deep_after))
    export_query = AuditQuery(tenant="tenant-5", start=T0, end=T0 + timedelta(days=45))

    lines = [f"{args.records:,} records, {args.repeat} runs each, ms p50 / p95"]
    lines.append(f"  {'query':<38} {'sqlite':>16} {'elasticsearch':>16}")
    for name, query in queries.items():
        cells = []
        for store in stores.values():
            p50, p95 = percentiles(functools.partial(store.page, query, 1), args.repeat)
            cells.append(f"{p50:7.1f} / {p95:6.1f}")
        lines.append(f"  {name:<38} {cells[0]:>16} {cells[1]:>16}")
    cells = []
    for store in stores.values():
        p50, p95 = percentiles(functools.partial(store.search, deep), args.repeat)
        cells.append(f"{p50:7.1f} / {p95:6.1f}")
    lines.append(f"  {'cursor page at the middle (50)':<38} {cells[0]:>16} {cells[1]:>16}")

    # The data ends 90 days after T0: the viewer's "now" is then, so its ranges hold records.
    now = T0 + timedelta(days=90)
    pages = {
        "viewer, one tenant, last 7 days": ({}, "tenant-3"),
        "viewer, one tenant, all 90 days": ({"range": "all"}, "tenant-3"),
        "viewer, every tenant, last 7 days": ({}, None),
        "viewer, every tenant, failed logins 24h": (
            {"range": "24h", "log_events": "login_failed"},
            None,
        ),
    }
    for name, (params, tenant) in pages.items():
        cells = []
        for store in stores.values():
            first_page = functools.partial(Viewer(store).page, params, tenant=tenant, now=now)
            assert first_page()[0] == 200, name
            p50, p95 = percentiles(first_page, args.repeat)
            cells.append(f"{p50:7.1f} / {p95:6.1f}")
        lines.append(f"  {name:<38} {cells[0]:>16} {cells[1]:>16}")

    rates = []
    for store in stores.values():
        start = time.perf_counter()
        size = sum(chunk.count("\n") for chunk in export(store, export_query, "ndjson"))
        rates.append(f"{size / (time.perf_counter() - start):,.0f}/s ({size:,})")
    lines.append(f"  {'export NDJSON, records per second':<38} {rates[0]:>16} {rates[1]:>16}")
    print("\n".join(lines))
    names = list(es.client.indices.get(index=es.read_pattern).body)
    es.client.indices.delete(index=",".join(names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--es-url")
    args = parser.parse_args()

    with cluster(args.es_url) as url:
        measure(url, args)


if __name__ == "__main__":
    main()
