from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from auditwire import AuditQuery, RecordNotFoundError, SQLiteStore, open_store
from tests.records import T0, full_record


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "audit.db")


def test_write_get_and_idempotent_rewrite(store: SQLiteStore) -> None:
    record = full_record()
    store.write([record])
    store.write([record, record])
    assert store.count() == 1
    assert store.get(record.id) == record
    assert store.get(record.id, tenant="acme-corp") == record
    with pytest.raises(RecordNotFoundError):
        store.get(record.id, tenant="other-tenant")
    with pytest.raises(RecordNotFoundError):
        store.get("log_01ARZ3NDEKTSV4RRFFQ69G5FAV")


def test_the_database_itself_refuses_updates_and_deletes(
    store: SQLiteStore, tmp_path: Path
) -> None:
    store.write([full_record()])
    store.close()
    conn = sqlite3.connect(tmp_path / "audit.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only: UPDATE refused"):
        conn.execute("UPDATE audit_records SET outcome = 'success'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only: DELETE refused"):
        conn.execute("DELETE FROM audit_records")
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("SELECT COUNT(*) FROM audit_records").fetchone() == (1,)
    conn.close()


def test_search_filters_and_orders_newest_first(store: SQLiteStore) -> None:
    records = [
        full_record(timestamp=T0 + timedelta(minutes=i), outcome=o, tenant=t)
        for i, (o, t) in enumerate(
            [("success", "a"), ("failure", "a"), ("failure", "b"), ("success", "b")]
        )
    ]
    same_ms = [full_record(timestamp=T0) for _ in range(3)]
    store.write(records + same_ms)
    assert store.search(AuditQuery(limit=3)) == [records[3], records[2], records[1]]
    assert store.search(AuditQuery(outcomes=("failure",), tenant="a")) == [records[1]]
    window = AuditQuery(start=T0 + timedelta(minutes=1), end=T0 + timedelta(minutes=3))
    assert store.search(window) == [records[2], records[1]]
    oldest = store.search(AuditQuery(end=T0 + timedelta(seconds=1)))
    assert [r.id for r in oldest] == sorted([records[0].id] + [r.id for r in same_ms], reverse=True)


def test_open_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store(f"sqlite:///{tmp_path}/x.db"), SQLiteStore)
    memory = open_store("sqlite:///:memory:")
    assert isinstance(memory, SQLiteStore)
    assert memory.path == ":memory:"
    with pytest.raises(ValueError, match="unsupported store URL"):
        open_store("mysql://nope")
