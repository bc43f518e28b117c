"""Against the real Elasticsearch of the test session (see conftest)."""

from __future__ import annotations

import io
import itertools
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import BadRequestError, Elasticsearch

from auditwire import (
    Actor,
    AuditLog,
    AuditQuery,
    BulkWriteError,
    Cursor,
    InvalidQueryError,
    RecordNotFoundError,
    SQLiteStore,
    Target,
)
from auditwire.cli import main
from auditwire.listing.params import parse_list_request
from auditwire.stores.elasticsearch import ElasticsearchStore
from tests.records import T0, full_record


def _mapping(store: ElasticsearchStore) -> dict[str, Any]:
    answer = store.client.indices.get_mapping(index=store.read_pattern)
    (index,) = answer.body.values()
    mapping: dict[str, Any] = index["mappings"]
    return mapping


def test_records_appear_as_ecs_documents_under_the_installed_mapping(
    es_store: ElasticsearchStore,
) -> None:
    log = AuditLog(es_store)
    record = log.record(
        "user.invited",
        actor=Actor(type="user", id="123", email="boss@acme.test"),
        target=Target("user", "456", "new@acme.test"),
        ip_address="2001:db8::1",
        user_agent="Mozilla/5.0 Firefox/121.0",
        tenant="acme",
        metadata={"roles_assigned": ["developer"]},
        timestamp=T0,
    )
    assert log.flush(timeout=30)
    hit = es_store.client.get(index=f"{es_store.prefix}-2024.01", id=record.id)
    doc = hit["_source"]
    assert doc["@timestamp"] == "2024-01-15T10:30:00.000Z"
    assert doc["event"]["action"] == "user.invited"
    assert doc["event"]["category"] == ["iam"]
    assert doc["event"]["type"] == ["user", "creation"]
    assert doc["user"] == {
        "id": "123",
        "email": "boss@acme.test",
        "target": {"id": "456", "email": "new@acme.test"},
    }
    assert doc["source"]["ip"] == "2001:db8::1"
    assert doc["message"] == "new@acme.test was invited by boss@acme.test"

    props = _mapping(es_store)["properties"]
    assert props["@timestamp"]["type"] == "date"
    assert props["source"]["properties"]["ip"]["type"] == "ip"
    assert props["event"]["properties"]["action"]["type"] == "keyword"
    assert props["auditwire"]["properties"]["metadata"]["type"] == "flattened"
    assert props["message"]["type"] in ("match_only_text", "text")

    # The ip mapping is live: a CIDR term finds the record, the metadata is searchable.
    found = es_store.client.search(
        index=es_store.read_pattern,
        query={"bool": {"filter": [
            {"term": {"source.ip": "2001:db8::/32"}},
            {"term": {"auditwire.metadata.roles_assigned": "developer"}},
        ]}},
    )  # fmt: skip
    assert [h["_id"] for h in found["hits"]["hits"]] == [record.id]
    assert es_store.get(record.id) == record


def test_the_mapping_is_strict(es_store: ElasticsearchStore) -> None:
    with pytest.raises(BadRequestError, match="strict_dynamic_mapping_exception"):
        es_store.client.index(
            index=f"{es_store.prefix}-2024.01",
            document={"@timestamp": "2024-01-01T00:00:00Z", "surprise": 1},
        )


def test_writes_are_idempotent_and_partitioned_by_record_time(es_store: ElasticsearchStore) -> None:
    january, march = full_record(), full_record(timestamp=T0 + timedelta(days=60))
    es_store.write([january, march])
    es_store.write([january, march, january])
    assert es_store.count() == 2
    indices = sorted(es_store.client.indices.get(index=es_store.read_pattern).body)
    assert indices == [f"{es_store.prefix}-2024.01", f"{es_store.prefix}-2024.03"]


def test_get_respects_tenants(es_store: ElasticsearchStore) -> None:
    record = full_record(tenant="acme")
    es_store.write([record])
    assert es_store.get(record.id, tenant="acme") == record
    with pytest.raises(RecordNotFoundError):
        es_store.get(record.id, tenant="globex")
    with pytest.raises(RecordNotFoundError):
        es_store.get("log_01ARZ3NDEKTSV4RRFFQ69G5FAV")


def test_same_filters_give_the_same_records_as_sqlite(
    es_store: ElasticsearchStore, tmp_path: Path
) -> None:
    sqlite = SQLiteStore(tmp_path / "audit.db")
    combos = itertools.product(
        ["login", "login_failed", "user.invited"],
        ["success", "failure"],
        ["acme", "globex"],
        ["u1", "u2"],
    )
    records = [
        full_record(
            action=action,
            category="authentication",
            outcome=outcome,
            tenant=tenant,
            actor=Actor(id=actor),
            timestamp=T0 + timedelta(minutes=i // 3),  # shared milliseconds test the tie-break
        )
        for i, (action, outcome, tenant, actor) in enumerate(combos)
    ]
    sqlite.write(records)
    es_store.write(records)
    queries = [
        AuditQuery(limit=100),
        AuditQuery(actions=("login", "login_failed"), outcomes=("failure",)),
        AuditQuery(tenant="acme", actor_ids=("u2",)),
        AuditQuery(start=T0 + timedelta(minutes=2), end=T0 + timedelta(minutes=5), limit=7),
        AuditQuery(target_types=("user",), categories=("authentication",), limit=5),
        AuditQuery(actor_emails=("nobody@x",)),
    ]
    for query in queries:
        expected = sqlite.search(query)
        assert [r.id for r in es_store.search(query)] == [r.id for r in expected], query
        assert es_store.count(query) == sqlite.count(query)
    assert es_store.search(queries[0])[0] == sqlite.search(queries[0])[0]


def test_refused_documents_raise_with_the_per_document_errors(es_store: ElasticsearchStore) -> None:
    es_store.write([full_record()])
    es_store.client.indices.close(index=f"{es_store.prefix}-2024.01")
    with pytest.raises(BulkWriteError) as caught:
        es_store.write([full_record(), full_record(timestamp=T0 + timedelta(days=60))])
    assert len(caught.value.errors) == 1
    assert "closed" in str(caught.value.errors[0])


def test_cli_setup_installs_the_template(es_url: str, es_prefix: str) -> None:
    out = io.StringIO()
    try:
        assert main(["setup", "--es-url", es_url, "--prefix", es_prefix], out=out) == 0
        assert f"installed index template '{es_prefix}'" in out.getvalue()
        with Elasticsearch(es_url) as client:
            template = client.indices.get_index_template(name=es_prefix)
            (item,) = template["index_templates"]
            assert item["index_template"]["index_patterns"] == [f"{es_prefix}-*"]
    finally:
        with Elasticsearch(es_url) as client:
            client.indices.delete_index_template(name=es_prefix)


def test_a_page_past_the_result_window_is_refused_before_the_cluster_is_asked(
    es_store: ElasticsearchStore,
) -> None:
    es_store.write([full_record()])
    es_store.refresh_indices()
    assert es_store.page(AuditQuery(limit=1000), page=10).total == 1  # the last page it serves
    with pytest.raises(InvalidQueryError, match="past the first 10,000 records") as caught:
        es_store.page(AuditQuery(limit=1000), page=11)
    assert caught.value.parameter == "page"


def test_an_id_no_record_could_have_is_not_found(es_store: ElasticsearchStore) -> None:
    with pytest.raises(RecordNotFoundError):
        es_store.get("x" * 40_000)  # longer than a keyword can hold


def test_the_first_and_last_dates_a_listing_reads(es_store: ElasticsearchStore) -> None:
    record = full_record()
    es_store.write([record])
    es_store.refresh_indices()
    widest = parse_list_request({"from": "0001-01-02", "to": "9999-12-30"}).query
    assert [r.id for r in es_store.search(widest)] == [record.id]
    earliest = Cursor(datetime(1, 1, 2, tzinfo=timezone.utc), record.id)
    assert es_store.search(AuditQuery(after=earliest)) == []


def test_a_forgotten_setup_is_done_before_the_first_delivery(
    es_url: str, es_prefix: str, tmp_path: Path
) -> None:
    """No ``auditwire setup``: the first send installs the template, so no document is ever
    indexed under guessed mappings (on which later reads would fail)."""
    client = Elasticsearch(es_url, request_timeout=30)
    store = ElasticsearchStore(client, prefix=f"{es_prefix}-forgot")
    log = AuditLog(store, spool=tmp_path)
    try:
        record = log.record("login", actor=Actor(id="u1"), ip_address="203.0.113.9")
        assert log.flush(timeout=30)
        store.refresh_indices()
        mappings = client.indices.get_mapping(index=store.read_pattern).body
        assert mappings and all(m["mappings"]["dynamic"] == "strict" for m in mappings.values())
        assert [r.id for r in log.search(source_ips=["203.0.113.0/24"])] == [record.id]
    finally:
        log.close()
        names = list(client.indices.get(index=store.read_pattern, allow_no_indices=True).body)
        if names:
            client.indices.delete(index=",".join(names))
        client.options(ignore_status=404).indices.delete_index_template(name=store.prefix)
        client.close()


def test_a_cluster_set_up_by_an_older_version_is_upgraded_before_the_first_send(
    es_store: ElasticsearchStore, tmp_path: Path
) -> None:
    """A template of schema 1 (before ``ecs.version``) and a partition made under it: the
    strict mapping would refuse every new document. The first send installs the current
    template and adds the new fields to the partition; nothing is dead-lettered."""
    from auditwire.ecs import ECS_VERSION, SCHEMA_VERSION

    client, prefix = es_store.client, es_store.prefix
    installed = client.indices.get_index_template(name=prefix)["index_templates"][0]
    old = {  # as setup() made it for this cluster, without what the cluster added
        k: v for k, v in installed["index_template"].items() if not k.endswith("_millis")
    }
    del old["template"]["mappings"]["properties"]["ecs"]
    old["_meta"]["schema_version"] = 1
    client.indices.put_index_template(name=prefix, **old)
    client.indices.create(index=f"{prefix}-2024.01")
    assert "ecs" not in _mapping(es_store)["properties"]

    log = AuditLog(ElasticsearchStore(client, prefix=prefix, refresh="wait_for"), spool=tmp_path)
    try:
        record = log.record("login", actor=Actor(id="u1"), timestamp=T0)
        assert log.flush(timeout=30)
        assert log.stats().dead_lettered == 0
    finally:
        log.close()
    assert client.get(index=f"{prefix}-2024.01", id=record.id)["_source"]["ecs"] == {
        "version": ECS_VERSION
    }
    assert _mapping(es_store)["properties"]["ecs"] == {
        "properties": {"version": {"type": "keyword", "ignore_above": 1024}}
    }
    installed = client.indices.get_index_template(name=prefix)["index_templates"][0]
    assert installed["index_template"]["_meta"]["schema_version"] == SCHEMA_VERSION
    sealed = _mapping(es_store)["properties"]["auditwire"]["properties"]["integrity"]
    assert sealed["properties"]["seq"] == {"type": "long"}
