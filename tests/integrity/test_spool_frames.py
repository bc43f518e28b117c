"""The spool's frames are covered by the seal: a frame someone with write access to the spool
directory adds — framed exactly as auditwire frames them — is not delivered as a record."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from auditwire import Actor, AuditLog
from auditwire._ids import new_id
from auditwire.delivery.pipeline import Delivery
from auditwire.stores.elasticsearch import ElasticsearchStore


@pytest.fixture
def store(es_url: str) -> Iterator[ElasticsearchStore]:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    store = ElasticsearchStore(Elasticsearch(es_url), prefix=prefix, refresh="wait_for")
    store.setup()
    yield store
    names = list(store.client.indices.get(index=f"{prefix}-*"))
    if names:
        store.client.indices.delete(index=",".join(names))
    store.client.indices.delete_index_template(name=prefix)


def test_a_frame_auditwire_did_not_seal_is_dead_lettered(
    store: ElasticsearchStore, tmp_path: Path
) -> None:
    log = AuditLog(store, spool=tmp_path)
    genuine = log.record("user.login", actor=Actor(id="alice"))
    assert log.flush(timeout=30)
    delivery = log.sink
    assert isinstance(delivery, Delivery)

    unsealed = log.build("user.login", actor=Actor(id="mallory"))
    edited = genuine.with_changes(actor=Actor(id="mallory"), id=new_id())  # seal kept
    delivery.spool.append([store.encode(unsealed), store.encode(edited)])
    assert log.flush(timeout=30)

    stats = log.stats()
    assert (stats.delivered, stats.dead_lettered) == (1, 2)
    reasons = [
        json.loads(line)["reason"] for line in delivery.dead_letter_path.read_text().splitlines()
    ]
    assert reasons == [
        "not an audit document: a document without a seal",
        "not an audit document: a document whose seal does not hold "
        "(its content does not match its hash)",
    ]
    store.refresh_indices()
    assert [r.actor.id for r in log.search()] == ["alice"]
    log.close()


def test_a_store_used_on_its_own_takes_unsealed_records(store: ElasticsearchStore) -> None:
    """Only a log's own store refuses the unsealed: records written to a store directly (a
    migration, an import) are not the spool's."""
    record = AuditLog("sqlite:///:memory:").build("user.login")
    store.write([record])
    assert store.get(record.id) == record
