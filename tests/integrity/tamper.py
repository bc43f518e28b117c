"""An attacker with the store's protections out of the way: SQLite with its triggers dropped,
a cluster written to directly. Each works on records' API forms, as the verifier reads them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any, Protocol

from auditwire import AuditRecord, SQLiteStore
from auditwire.ecs import to_ecs
from auditwire.seal import api_digest
from auditwire.stores.elasticsearch import ElasticsearchStore, OpenSearchStore
from auditwire.stores.index_template import write_index


class Tamper(Protocol):
    store: Any

    def chain(self) -> list[dict[str, Any]]: ...

    def replace(self, record_id: str, api: dict[str, Any]) -> None: ...

    def delete(self, record_id: str) -> None: ...

    def insert(self, api: dict[str, Any]) -> None: ...


class SQLiteTamper:
    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.conn = sqlite3.connect(store.path, isolation_level=None)

    def _unprotected(self) -> None:
        """Drop the triggers (a log opened since has put them back)."""
        self.conn.executescript(
            "DROP TRIGGER IF EXISTS audit_records_no_update;"
            "DROP TRIGGER IF EXISTS audit_records_no_delete;"
        )

    def chain(self) -> list[dict[str, Any]]:
        return list(self.store.chain())

    def replace(self, record_id: str, api: dict[str, Any]) -> None:
        """The row rewritten in place (its index columns too, as a careful attacker would)."""
        self.delete(record_id)
        self.insert(api)

    def delete(self, record_id: str) -> None:
        self._unprotected()
        assert self.conn.execute("DELETE FROM audit_records WHERE id = ?", (record_id,)).rowcount

    def insert(self, api: dict[str, Any]) -> None:
        self.store.write([AuditRecord.from_api(api)])


class ClusterTamper:
    def __init__(self, store: ElasticsearchStore) -> None:
        self.store = store
        self.client = store.client

    def chain(self) -> list[dict[str, Any]]:
        self.store.refresh_indices()
        return list(self.store.chain())

    def _index_of(self, record_id: str) -> str:
        self.store.refresh_indices()
        hits = self.store._api.search(
            self.store.read_pattern, {"query": {"term": {"event.id": record_id}}, "size": 1}
        )["hits"]["hits"]
        return str(hits[0]["_index"])

    def replace(self, record_id: str, api: dict[str, Any]) -> None:
        """An overwrite of the same ``_id``: what an ``index`` request by an admin does."""
        index = self._index_of(record_id)
        self.delete(record_id)
        self._put(index, record_id, api)

    def delete(self, record_id: str) -> None:
        self.client.delete(index=self._index_of(record_id), id=record_id, refresh=True)

    def insert(self, api: dict[str, Any], index: str | None = None) -> None:
        record = AuditRecord.from_api(api)
        self._put(index or write_index(self.store.prefix, record.timestamp), record.id, api)

    def _put(self, index: str, record_id: str, api: dict[str, Any]) -> None:
        document = to_ecs(AuditRecord.from_api(api), self.store.catalog)
        if isinstance(self.store, OpenSearchStore):
            self.client.index(index=index, id=record_id, body=document, refresh=True)
        else:
            self.client.index(index=index, id=record_id, document=document, refresh=True)


def at(chain: list[dict[str, Any]], seq: int) -> dict[str, Any]:
    (found,) = [api for api in chain if api["integrity"]["seq"] == seq]
    return found


def resealed(api: dict[str, Any], **integrity: Any) -> dict[str, Any]:
    """``api`` with its seal's fields changed and its hash recomputed — what anyone can do."""
    seal = {k: v for k, v in api["integrity"].items() if k != "hash"}
    seal.update(integrity)
    out = {**api, "integrity": seal}
    return {**api, "integrity": {**seal, "hash": api_digest(out)}}


def rechained(chain: list[dict[str, Any]], start: int) -> Iterator[dict[str, Any]]:
    """Every record from ``start`` on, relinked and rehashed after an edit at ``start``."""
    ordered = sorted(chain, key=lambda api: api["integrity"]["seq"])
    head = at(chain, start)["integrity"]["prev"]
    for api in ordered:
        if api["integrity"]["seq"] < start:
            continue
        api = resealed(api, prev=head)
        head = api["integrity"]["hash"]
        yield api
