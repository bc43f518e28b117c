"""A record's canonical bytes survive every store: generated records — any text, floats,
nested metadata, every optional part present or not — read back from SQLite, Elasticsearch
and OpenSearch give the bytes they were written with, so a digest made when a record is
written can be checked when it is read."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditwire import AuditRecord, SQLiteStore
from auditwire.canonical import canonical_json, canonical_record, record_bytes, standard_json
from auditwire.stores.elasticsearch import ElasticsearchStore, OpenSearchStore
from tests.records import json_values, records

batches = st.lists(records(), min_size=1, max_size=40, unique_by=lambda r: r.id)


def test_the_bytes_are_canonical() -> None:
    assert canonical_json({"b": 1.5, "a": ["é", None]}) == '{"a":["é",null],"b":1.5}'.encode()
    # A record refuses NaN before it is ever hashed; the definition refuses it too.
    with pytest.raises(ValueError, match="not JSON compliant"):
        standard_json({"x": float("nan")})


_EDGE_FLOATS = [1e-4, 9.999999999999999e-05, 1e-5, 1.5e-7, 5e-324, 1e16, 1e22, -0.0, 0.1]


@settings(max_examples=300, deadline=None)
@given(value=json_values | st.floats(allow_nan=False, allow_infinity=False))
def test_the_fast_road_writes_the_definitions_bytes(value: object) -> None:
    """orjson's road (when installed) gives exactly the standard library's bytes, floats and
    big integers included."""
    for probe in (value, {"v": value, "edge": _EDGE_FLOATS, "big": 2**70}):
        assert canonical_json(probe) == standard_json(probe)


@settings(max_examples=300, deadline=None)
@given(record=records(), keep_metadata=st.booleans())
def test_a_records_road_writes_the_definitions_bytes(
    record: AuditRecord, keep_metadata: bool
) -> None:
    """The road for forms of records this process made (orjson's output unsearched when
    there is no metadata) gives the standard library's bytes, with a seal's part in place."""
    api = record.to_api()
    if not keep_metadata:
        api["metadata"] = {}
    api["integrity"] = {"origin": "o", "writer": "w", "seq": 2**63 - 1, "prev": "0" * 64}
    assert canonical_record(api) == standard_json(api)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=batches)
def test_through_sqlite(batch: list[AuditRecord]) -> None:
    store = SQLiteStore(Path(tempfile.mkdtemp()) / "audit.db")
    store.write(batch)
    for record in batch:
        assert record_bytes(store.get(record.id)) == record_bytes(record)


@pytest.fixture(scope="module")
def clusters(es_url: str, opensearch_url: str) -> Iterator[list[ElasticsearchStore]]:
    from elasticsearch import Elasticsearch
    from opensearchpy import OpenSearch

    stores = [
        ElasticsearchStore(Elasticsearch(es_url, request_timeout=60), prefix="test-canonical"),
        OpenSearchStore(OpenSearch(opensearch_url, timeout=60), prefix="test-canonical"),
    ]
    for store in stores:
        store.setup()
    yield stores
    for store in stores:
        names = list(store.client.indices.get(index=store.read_pattern))
        if names:
            store.client.indices.delete(index=",".join(names))
        store.client.indices.delete_index_template(name=store.prefix)


def test_through_elasticsearch_and_opensearch(clusters: list[ElasticsearchStore]) -> None:
    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
    @given(batch=batches)
    def check(batch: list[AuditRecord]) -> None:
        for store in clusters:
            store.write(batch)
            store.refresh_indices()
            for record in batch:
                assert record_bytes(store.get(record.id)) == record_bytes(record), store

    check()
