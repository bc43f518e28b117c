"""The OpenTelemetry integration over the real SDK: records as log records, the pipeline's
figures as metrics."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from auditwire import AuditLog
from auditwire.integrations.otel import OpenTelemetryLogSink
from auditwire.stores.elasticsearch import ElasticsearchStore
from tests.records import full_record


def otel_pipeline() -> tuple[LoggerProvider, InMemoryLogRecordExporter]:
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider, exporter


def test_records_become_log_records_with_their_trace_and_ecs_attributes() -> None:
    provider, exporter = otel_pipeline()
    sink = OpenTelemetryLogSink(provider)
    record = full_record()
    failed = full_record(outcome="failure", trace=None)
    sink.write([record, failed])
    assert sink.flush(5)
    first, second = (data.log_record for data in exporter.get_finished_logs())
    assert first.body == record.message
    assert first.event_name == "user_created"
    assert first.timestamp == int(record.timestamp.timestamp()) * 10**9
    assert record.trace is not None and record.trace.span_id is not None
    assert first.trace_id == int(record.trace.trace_id, 16)
    assert first.span_id == int(record.trace.span_id, 16)
    attributes = dict(first.attributes or {})
    assert attributes["event.action"] == "user_created"
    assert attributes["user.id"] == "123"
    assert attributes["source.ip"] == "203.0.113.45"
    assert attributes["organization.id"] == "acme-corp"
    assert json.loads(str(attributes["auditwire.metadata"])) == record.metadata
    assert all(not isinstance(v, dict) for v in attributes.values())
    assert str(first.severity_text) == "INFO" and str(second.severity_text) == "WARN"
    assert second.trace_id in (None, 0)
    provider.shutdown()


def test_pipeline_health_is_published_as_opentelemetry_metrics(
    es_store: ElasticsearchStore, tmp_path: Path
) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from auditwire.integrations.otel import COUNTERS, GAUGES, instrument_metrics

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    log = AuditLog(es_store, spool=tmp_path)
    instrument_metrics(log, provider)
    for n in range(30):
        log.record("login", actor={"type": "user", "id": f"u{n}"})
    assert log.flush(timeout=30)
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        metric.name: getattr(metric.data.data_points[0], "value", None)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert set(points) == set(COUNTERS) | set(GAUGES)
    assert points["auditwire.records.accepted"] == 30
    assert points["auditwire.records.delivered"] == 30
    assert points["auditwire.spool.size"] == 0
    log.close()
    provider.shutdown()
