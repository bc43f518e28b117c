"""Fan-out to several sinks: every sink written, each remote one spooled on its own."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from auditwire import AuditLog, AuditQuery, AuditRecord, SQLiteStore
from auditwire.delivery.fanout import FanOut
from auditwire.delivery.pipeline import Delivery
from auditwire.errors import StoreError
from auditwire.integrations.otel import OpenTelemetryLogSink
from auditwire.stores.elasticsearch import ElasticsearchStore
from tests.integrations.test_otel import otel_pipeline
from tests.records import full_record


class Refusing:
    def write(self, records: Sequence[AuditRecord]) -> None:
        raise OSError("disk full")

    def close(self) -> None:
        pass


def test_fan_out_writes_everywhere_and_names_the_sink_that_refused(tmp_path: Path) -> None:
    provider, exporter = otel_pipeline()
    sqlite = SQLiteStore(tmp_path / "a.db")
    fan = FanOut([sqlite, Refusing(), OpenTelemetryLogSink(provider)])
    record = full_record()
    with pytest.raises(StoreError, match=r"1 of 3 sinks refused 1 record\(s\): .*disk full"):
        fan.write([record])
    assert sqlite.get(record.id) == record  # the others took it
    assert len(exporter.get_finished_logs()) == 1
    assert fan.primary is sqlite
    fan.close()
    provider.shutdown()


def test_fan_out_spools_each_remote_store_on_its_own(
    es_store: ElasticsearchStore, tmp_path: Path
) -> None:
    sqlite = SQLiteStore(tmp_path / "local.db")
    log = AuditLog(FanOut([es_store, sqlite], spool=tmp_path / "spool"))
    assert log.store is es_store  # reads from the first readable sink
    (delivery,) = log.sink.deliveries()  # type: ignore[attr-defined]
    assert isinstance(delivery, Delivery)
    records = [log.record("login", actor={"type": "user", "id": f"u{n}"}) for n in range(50)]
    assert log.flush(timeout=30)
    assert log.stats().delivered == 50
    expected = sorted(r.id for r in records)
    assert sorted(r.id for r in es_store.search(AuditQuery(limit=100))) == expected
    assert sorted(r.id for r in sqlite.search(AuditQuery(limit=100))) == expected
    log.close()
