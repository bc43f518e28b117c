"""Retention: the one sanctioned removal, and both stores agreeing on what remains."""

from __future__ import annotations

import io
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from auditwire import Actor, AuditLog, AuditQuery, AuditRecord, SQLiteStore
from auditwire.cli import main
from auditwire.errors import StoreError
from auditwire.retention import RetentionPolicy, parse_age
from auditwire.stores.elasticsearch import ElasticsearchStore

NOW = datetime(2025, 6, 15, 12, tzinfo=timezone.utc)
TENANTS = [None, "acme", "globex", "initech"]
AGES = [10, 40, 100, 200, 400]
POLICY = RetentionPolicy(
    timedelta(days=90), {"acme": timedelta(days=30), "globex": timedelta(days=365)}
)
KEPT_DAYS = {None: 90, "initech": 90, "acme": 30, "globex": 365}


def scenario() -> tuple[list[AuditRecord], set[str]]:
    log = AuditLog("sqlite:///:memory:")
    records = [
        log.build(
            "login",
            actor=Actor(id=f"{tenant}-{age}"),
            tenant=tenant,
            timestamp=NOW - timedelta(days=age),
        )
        for tenant in TENANTS
        for age in AGES
    ]
    kept = {r.id for r in records if NOW - r.timestamp < timedelta(days=KEPT_DAYS[r.tenant])}
    return records, kept


def remaining(store: SQLiteStore | ElasticsearchStore) -> set[str]:
    return {r.id for r in store.search(AuditQuery(limit=1000))}


def test_sqlite_keeps_what_the_policy_keeps_and_refuses_any_other_delete(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    records, kept = scenario()
    store.write(records)
    result = store.apply_retention(POLICY, now=NOW)
    assert remaining(store) == kept
    assert result.removed_records == len(records) - len(kept)
    assert store.apply_retention(POLICY, now=NOW).removed_records == 0  # idempotent
    with (
        sqlite3.connect(tmp_path / "a.db") as conn,
        pytest.raises(sqlite3.IntegrityError, match="append-only"),
    ):
        conn.execute("DELETE FROM audit_records")  # the grant is gone after retention
    store.close()


def test_elasticsearch_drops_old_partitions_and_agrees_with_sqlite(
    es_store: ElasticsearchStore,
) -> None:
    records, kept = scenario()
    es_store.write(records)
    partitions = set(es_store.partitions())
    result = es_store.apply_retention(POLICY, now=NOW)
    assert remaining(es_store) == kept
    assert result.removed_records == len(records) - len(kept)
    # 400 days back is May 2024, a month wholly older than the longest age (365 days).
    assert result.removed_partitions == (f"{es_store.prefix}-2024.05",)
    assert set(es_store.partitions()) == partitions - {f"{es_store.prefix}-2024.05"}


def test_an_index_under_the_prefix_that_is_no_partition_is_left_alone(
    es_store: ElasticsearchStore,
) -> None:
    es_store.client.indices.create(index=f"{es_store.prefix}-notes")
    es_store.apply_retention(RetentionPolicy(timedelta(days=1)), now=NOW)
    assert es_store.client.indices.exists(index=f"{es_store.prefix}-notes")


def test_the_audit_log_and_the_command_line_apply_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    records, _ = scenario()
    with AuditLog(url) as log:
        log.write(records)
        result = log.apply_retention(timedelta(days=3650), now=NOW)
        assert result.removed_records == 0
        with pytest.raises(StoreError, match="every tenant"):
            AuditLog(url, tenant="acme").apply_retention(timedelta(days=1))
    out = io.StringIO()
    code = main(["retention", "--store", url, "--max-age", "1d", "--tenant", "acme=2d"], out)
    assert code == 0
    assert out.getvalue() == f"removed {len(records)} record(s)\n"
    assert main(["retention", "--store", url, "--max-age", "soon"], io.StringIO()) == 2


@pytest.mark.parametrize(
    ("text", "age"),
    [("90d", timedelta(days=90)), ("12w", timedelta(weeks=12)), (" 36h", timedelta(hours=36))],
)
def test_ages_are_read_from_text(text: str, age: timedelta) -> None:
    assert parse_age(text) == age


def test_a_non_positive_age_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'acme'"):
        RetentionPolicy(timedelta(days=30), {"acme": timedelta(0)})
    with pytest.raises(ValueError, match="is not a number of days"):
        parse_age("90 days")
