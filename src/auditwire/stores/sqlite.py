"""The embedded default store: SQLite, no server, append-only.

Append-only is enforced by the database, not by this class: triggers abort every ``UPDATE`` and
``DELETE`` on the records table, so no code path (ours, the application's or a DB shell) can
rewrite history without first dropping the triggers. The one exception is retention: a delete
passes only while a grant row names a cutoff (and tenant) and only for records older than it;
:meth:`SQLiteStore.apply_retention` writes the grant, deletes and withdraws the grant in one
transaction. WAL mode lets readers work while the
writer appends. Columns hold the filterable fields; the full record is kept as its API JSON.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from auditwire._fork import renew_in_child
from auditwire._time import format_timestamp, utcnow
from auditwire.aggregation import TimeBucket, TopValue
from auditwire.canonical import parse_json
from auditwire.errors import RecordNotFoundError, StoreError
from auditwire.query import AuditQuery, Page
from auditwire.record import AuditRecord, flat_fields
from auditwire.retention import RetentionPolicy, RetentionResult
from auditwire.stores.translate import (
    SQL_ORDER,
    from_sql_timeline,
    from_sql_top,
    ip_key,
    timeline_to_sql,
    to_sql,
    top_to_sql,
)

__all__ = ["SCHEMA", "SQLiteStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    timestamp TEXT NOT NULL,
    action TEXT NOT NULL,
    category TEXT NOT NULL,
    outcome TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    actor_email TEXT,
    target_type TEXT,
    target_id TEXT,
    tenant TEXT,
    ip_address TEXT,
    ip_key TEXT,
    record TEXT NOT NULL,
    chain_writer TEXT,
    chain_seq INTEGER
);
-- Time-ordered, and covering the columns charts count and filter on (outcome, category,
-- action, actor, address), so a chart over a date range reads an index range, not records.
-- Indexes of 0.1 named audit_records_time and audit_records_tenant_time are replaced on
-- first open.
DROP INDEX IF EXISTS audit_records_time;
DROP INDEX IF EXISTS audit_records_tenant_time;
CREATE INDEX IF NOT EXISTS audit_records_by_time
    ON audit_records (timestamp DESC, id DESC, outcome, category, action, actor_id, ip_key);
CREATE INDEX IF NOT EXISTS audit_records_by_tenant_time
    ON audit_records (tenant, timestamp DESC, id DESC, outcome, category, action, actor_id, ip_key);
CREATE INDEX IF NOT EXISTS audit_records_action ON audit_records (action, outcome);
CREATE INDEX IF NOT EXISTS audit_records_tenant_action
    ON audit_records (tenant, action, outcome);
CREATE INDEX IF NOT EXISTS audit_records_actor ON audit_records (actor_id);
CREATE INDEX IF NOT EXISTS audit_records_actor_email ON audit_records (actor_email);
CREATE INDEX IF NOT EXISTS audit_records_target ON audit_records (target_id);
CREATE INDEX IF NOT EXISTS audit_records_ip ON audit_records (ip_key);
CREATE TRIGGER IF NOT EXISTS audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only: UPDATE refused'); END;
CREATE TABLE IF NOT EXISTS audit_retention_grant (cutoff TEXT NOT NULL, tenant TEXT);
DROP TRIGGER IF EXISTS audit_records_no_delete;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
WHEN NOT EXISTS (
    SELECT 1 FROM audit_retention_grant AS g
    WHERE old.timestamp < g.cutoff AND (g.tenant IS NULL OR g.tenant = old.tenant)
)
BEGIN SELECT RAISE(ABORT, 'audit records are append-only: DELETE refused (only retention removes
records, and only those older than its cutoff)'); END;
"""

_COLUMNS = (
    "id, timestamp, action, category, outcome, actor_type, actor_id, actor_email,"
    " target_type, target_id, tenant, ip_address, ip_key, record, chain_writer, chain_seq"
)
#: Databases made before records were sealed gain the chain's columns on first open.
_CHAIN_COLUMNS = """
ALTER TABLE audit_records ADD COLUMN chain_writer TEXT;
ALTER TABLE audit_records ADD COLUMN chain_seq INTEGER;
"""
#: Verification reads each writer's records in sequence order.
_CHAIN_INDEX = """
CREATE INDEX IF NOT EXISTS audit_records_chain ON audit_records (chain_writer, chain_seq);
"""


#: The API names of the filterable columns, in table order.
_FLAT = (
    "id", "timestamp", "action", "category", "outcome", "actorType", "actorId", "actorEmail",
    "targetType", "targetId", "tenant", "ipAddress",
)  # fmt: skip


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _row(record: AuditRecord) -> tuple[str | int | None, ...]:
    fields = flat_fields(record)
    integrity = record.integrity
    return (
        *(fields[name] for name in _FLAT),
        ip_key(record.ip_address),
        json.dumps(record.to_api(), ensure_ascii=False, separators=(",", ":")),
        None if integrity is None else integrity.writer,
        None if integrity is None else integrity.seq,
    )


def _chain_conditions(
    since: datetime | None,
    until: datetime | None,
    writer: str | None = None,
    first: int | None = None,
    last: int | None = None,
) -> tuple[list[str], list[Any]]:
    """The ``WHERE`` terms and parameters of a read in chain order."""
    conditions: list[str] = []
    params: list[Any] = []
    for sql, value in (
        ("timestamp >= ?", None if since is None else format_timestamp(since)),
        ("timestamp < ?", None if until is None else format_timestamp(until)),
        ("chain_writer = ?", writer),
        ("chain_seq >= ?", first),
        ("chain_seq <= ?", last),
    ):
        if value is not None:
            conditions.append(sql)
            params.append(value)
    return conditions, params


class SQLiteStore:
    """Records in one SQLite file (or ``":memory:"``), safe to share between threads."""

    def __init__(self, path: str | Path = "auditwire.db", *, readonly: bool = False) -> None:
        """``readonly`` opens an existing database for reading only (what read-only commands
        use): a missing file is a :class:`~auditwire.errors.StoreError`, and nothing — file
        or directory — is created."""
        self.path = str(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        if readonly and (self.path == ":memory:" or not Path(self.path).is_file()):
            raise StoreError(f"there is no audit database at {self.path}")
        if not readonly and self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = self._open()
        if readonly:
            return
        with self._lock:
            self._conn.executescript(f"BEGIN IMMEDIATE; {SCHEMA} COMMIT;")
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(audit_records)")}
            chain = "" if "chain_writer" in columns else _CHAIN_COLUMNS
            self._conn.executescript(f"BEGIN IMMEDIATE; {chain} {_CHAIN_INDEX} COMMIT;")
        renew_in_child(self, SQLiteStore._after_fork)

    def _open(self) -> sqlite3.Connection:
        if self.readonly:
            uri = f"{Path(self.path).resolve().as_uri()}?mode=ro"
            return sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def _after_fork(self) -> None:
        """A forked child opens the database anew: SQLite forbids using a connection made
        before ``fork()`` in the child (both would write through one file handle's locks)."""
        self._lock = threading.Lock()
        if self.path == ":memory:":
            return  # the child's copy of the parent's memory is its own
        # Kept, never closed here: closing would let SQLite act on the parent's files.
        self._inherited = self._conn
        self._conn = self._open()

    def write(self, records: Sequence[AuditRecord]) -> None:
        """Insert all records in one transaction; ids already stored are skipped."""
        rows = [_row(r) for r in records]
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(
                    f"INSERT OR IGNORE INTO audit_records ({_COLUMNS}) VALUES ({_marks(16)})",
                    rows,
                )
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreError(f"SQLite write to {self.path} failed: {exc}") from exc

    def get(self, record_id: str, *, tenant: str | None = None) -> AuditRecord:
        sql = "SELECT record FROM audit_records WHERE id = ?"
        params: list[str] = [record_id]
        if tenant is not None:
            sql += " AND tenant = ?"
            params.append(tenant)
        with self._lock:
            row = self._conn.execute(sql, params).fetchone()
        if row is None:
            raise RecordNotFoundError(record_id)
        return AuditRecord.from_api(json.loads(row[0]))

    def search(self, query: AuditQuery) -> list[AuditRecord]:
        where, params = to_sql(query)
        sql = f"SELECT record FROM audit_records {where} ORDER BY {SQL_ORDER} LIMIT ?"
        with self._lock:
            rows = self._conn.execute(sql, [*params, query.limit]).fetchall()
        return [AuditRecord.from_api(json.loads(r[0])) for r in rows]

    def page(self, query: AuditQuery, page: int = 1) -> Page:
        """Page ``page`` (from 1) of ``query.limit`` records, with the total for a dashboard."""
        where, params = to_sql(query)
        sql = f"SELECT record FROM audit_records {where} ORDER BY {SQL_ORDER} LIMIT ? OFFSET ?"
        offset = (page - 1) * query.limit
        with self._lock:
            rows = self._conn.execute(sql, [*params, query.limit, offset]).fetchall()
        records = [AuditRecord.from_api(json.loads(r[0])) for r in rows]
        return Page(records, self.count(query), page, query.limit)

    def count(self, query: AuditQuery | None = None) -> int:
        where, params = to_sql(query) if query is not None else ("", [])
        with self._lock:
            (total,) = self._conn.execute(
                f"SELECT COUNT(*) FROM audit_records {where}", params
            ).fetchone()
        return int(total)

    def timeline(self, query: AuditQuery, interval: str) -> list[TimeBucket]:
        sql, params = timeline_to_sql(query, interval)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return from_sql_timeline(rows, interval)

    def top(self, query: AuditQuery, field: str, size: int = 10) -> list[TopValue]:
        sql, params = top_to_sql(query, field, size)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return from_sql_top(rows, field)

    def apply_retention(
        self, policy: RetentionPolicy, *, now: datetime | None = None
    ) -> RetentionResult:
        """Delete what ``policy`` no longer keeps, in one transaction."""
        removed = 0
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                for cutoff, only, excluded in policy.groups(now or utcnow()):
                    edge = format_timestamp(cutoff)
                    sql = "DELETE FROM audit_records WHERE timestamp < ?"
                    params: list[str] = [edge]
                    grants: list[tuple[str, str | None]] = [(edge, None)]
                    if only is not None:
                        sql += f" AND tenant IN ({_marks(len(only))})"
                        params += only
                        grants = [(edge, tenant) for tenant in only]
                    if excluded:
                        sql += f" AND (tenant IS NULL OR tenant NOT IN ({_marks(len(excluded))}))"
                        params += excluded
                    self._conn.executemany(
                        "INSERT INTO audit_retention_grant (cutoff, tenant) VALUES (?, ?)", grants
                    )
                    removed += self._conn.execute(sql, params).rowcount
                    self._conn.execute("DELETE FROM audit_retention_grant")
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreError(f"retention on {self.path} failed: {exc}") from exc
        return RetentionResult(removed_records=removed)

    def chain(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        writer: str | None = None,
        first: int | None = None,
        last: int | None = None,
        unsealed: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """:meth:`Chained.chain <auditwire.stores.base.Chained.chain>`: slices of the chain
        index, so a long chain streams."""
        conditions, params = _chain_conditions(since, until, writer, first, last)
        if unsealed:
            conditions.append("chain_writer IS NULL")
        where = " AND ".join(conditions) or "1"
        key: tuple[Any, ...] = (None,)  # after: the last (writer, seq, rowid) read
        while True:
            if key == (None,):
                after, extra = "", []
            else:
                after = " AND (chain_writer, chain_seq, seq) > (?, ?, ?)"
                extra = list(key)
                if key[0] is None:  # still among the unsealed ones, which sort first
                    after = " AND (chain_writer IS NOT NULL OR (chain_writer IS NULL AND seq > ?))"
                    extra = [key[2]]
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT chain_writer, chain_seq, seq, record FROM audit_records "
                    f"WHERE {where}{after} ORDER BY chain_writer, chain_seq, seq LIMIT 5000",
                    [*params, *extra],
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield parse_json(row[3])
            key = tuple(rows[-1][:3])

    def writers(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[str | None]:
        """:meth:`Chained.writers <auditwire.stores.base.Chained.writers>`."""
        conditions, params = _chain_conditions(since, until)
        where = " AND ".join(conditions) or "1"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT DISTINCT chain_writer FROM audit_records WHERE {where} "
                "ORDER BY chain_writer",
                params,
            ).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
