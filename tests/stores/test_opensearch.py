"""OpenSearch behind the same interface, against a real OpenSearch the suite starts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from auditwire import Actor, AuditLog, AuditQuery, SQLiteStore
from auditwire.delivery.pipeline import Delivery
from auditwire.retention import RetentionPolicy
from auditwire.stores.elasticsearch import ElasticsearchStore, OpenSearchStore
from tests.records import T0, full_record
from tests.test_retention import NOW, POLICY, scenario


@pytest.fixture
def os_store(opensearch_url: str, es_prefix: str) -> Iterator[OpenSearchStore]:
    client = OpenSearch(opensearch_url, timeout=30)
    store = OpenSearchStore(client, prefix=es_prefix, refresh="wait_for")
    result = store.setup()
    assert result.substituted_types.get("flattened") == "flat_object"
    try:
        yield store
    finally:
        names = list(
            client.indices.get(index=f"{es_prefix}-*", params={"allow_no_indices": "true"})
        )
        if names:
            client.indices.delete(index=",".join(names))
        client.indices.delete_index_template(name=es_prefix)
        client.close()


def test_records_round_trip_and_filters_agree_with_sqlite(
    os_store: OpenSearchStore, tmp_path: Path
) -> None:
    sqlite = SQLiteStore(tmp_path / "a.db")
    records = [
        full_record(
            actor=Actor(id=f"u{n % 7}"),
            outcome="failure" if n % 3 == 0 else "success",
            timestamp=T0 + timedelta(minutes=n),
            tenant=f"t{n % 2}",
        )
        for n in range(60)
    ]
    os_store.write(records)
    sqlite.write(records)
    assert os_store.get(records[5].id) == records[5]
    queries = [
        AuditQuery(limit=100),
        AuditQuery(tenant="t1", outcomes=("failure",), limit=100),
        AuditQuery(users=("u3",), start=T0 + timedelta(minutes=10), limit=100),
        AuditQuery(source_ips=("203.0.113.0/24",), limit=7),
    ]
    for query in queries:
        assert [r.id for r in os_store.search(query)] == [r.id for r in sqlite.search(query)]
        assert os_store.count(query) == sqlite.count(query)
        for interval in ("minute", "hour"):
            assert os_store.timeline(query, interval) == sqlite.timeline(query, interval)
        for field in ("actor_id", "source_ip", "tenant"):
            assert os_store.top(query, field, 3) == sqlite.top(query, field, 3)
    assert sum(bucket.total for bucket in os_store.timeline(queries[0], "minute")) == 60
    page = os_store.page(AuditQuery(limit=25), 2)
    assert (page.total, len(page.records)) == (60, 25)
    os_store.write(records[:3])  # a retry: refused as duplicates, counted as written
    assert os_store.count() == 60


def test_delivery_spools_and_delivers_to_opensearch(
    os_store: OpenSearchStore, tmp_path: Path
) -> None:
    log = AuditLog(os_store, spool=tmp_path)
    assert isinstance(log.sink, Delivery)
    assert os_store.spool_name.startswith(f"opensearch-{os_store.prefix}-")
    records = [log.record("login", actor=Actor(id=f"u{n}")) for n in range(200)]
    assert log.flush(timeout=60)
    assert log.stats().delivered == 200
    assert os_store.count() == 200
    assert log.get(records[-1].id) == records[-1]
    log.close()


def test_retention_on_opensearch_keeps_what_sqlite_keeps(os_store: OpenSearchStore) -> None:
    records, kept = scenario()
    os_store.write(records)
    result = os_store.apply_retention(POLICY, now=NOW)
    assert {r.id for r in os_store.search(AuditQuery(limit=1000))} == kept
    assert result.removed_partitions == (f"{os_store.prefix}-2024.05",)
    assert (
        os_store.apply_retention(RetentionPolicy(timedelta(days=3650)), now=NOW).removed_records
        == 0
    )


def raw_probe(url: str) -> bool:
    """Whether ``GET /_data_stream/<missing>`` reaches a handler, asked without any client."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/_data_stream/auditwire-probe-missing", timeout=10):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code == 404 and b"no handler found" not in exc.read()


def test_data_stream_support_is_detected_not_assumed(
    es_url: str, es_store: ElasticsearchStore, opensearch_url: str, os_store: OpenSearchStore
) -> None:
    assert es_store.setup().data_streams is raw_probe(es_url)
    assert os_store.setup().data_streams is raw_probe(opensearch_url)


def test_a_data_stream_is_written_where_the_cluster_has_them_and_refused_where_not(
    opensearch_url: str, es_url: str, es_prefix: str, tmp_path: Path
) -> None:
    from elasticsearch import Elasticsearch

    from auditwire.errors import StoreError

    without = ElasticsearchStore(
        Elasticsearch(es_url), prefix=es_prefix, partitioning="data_stream"
    )
    with pytest.raises(StoreError, match=r"no data streams.*partitioning='month'"):
        without.setup()

    client = OpenSearch(opensearch_url, timeout=30)
    store = OpenSearchStore(
        client, prefix=es_prefix, partitioning="data_stream", refresh="wait_for"
    )
    try:
        assert store.setup().data_streams
        log = AuditLog(store, spool=tmp_path)
        records = [
            log.record("login", actor=Actor(id=f"u{n}"), timestamp=NOW - timedelta(days=n * 20))
            for n in range(30)
        ]
        assert log.flush(timeout=60)
        store.write(records[:5])  # a retry within one backing index: refused as duplicates
        assert store.count() == 30
        stream = client.indices.get_data_stream(name=f"{es_prefix}-stream")
        assert stream["data_streams"][0]["name"] == f"{es_prefix}-stream"
        result = store.apply_retention(RetentionPolicy(timedelta(days=100)), now=NOW)
        assert result.removed_partitions == ()
        kept = {r.id for r in store.search(AuditQuery(limit=100))}
        assert kept == {r.id for r in records if NOW - r.timestamp <= timedelta(days=100)}
        log.close()
    finally:
        client.indices.delete_data_stream(name=f"{es_prefix}-stream", params={"ignore": 404})
        client.indices.delete_index_template(name=es_prefix)
        client.close()
