"""Audit records as OpenTelemetry log records, for teams whose logs go through a collector.

Each record becomes one log record: the rendered message as body, the action as event name,
the record's time, its trace and span (so a backend links the audit event to the request's
trace), and its fields as attributes under their ECS names (``event.action``, ``user.id``,
``source.ip``...), flattened to the scalar values attributes allow.

Delivery from here on is the OpenTelemetry SDK's: its processors batch and export, and drop
when the exporter fails. For records that must not be lost, fan out to a spooled store as well
(:class:`~auditwire.delivery.fanout.FanOut`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from auditwire.ecs import to_ecs
from auditwire.errors import MissingDependencyError

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.sdk._logs import LoggerProvider

    from auditwire.audit_log import AuditLog, AuditStats
    from auditwire.record import AuditRecord

__all__ = [
    "COUNTERS",
    "GAUGES",
    "SCOPE",
    "OpenTelemetryLogSink",
    "attributes",
    "instrument_metrics",
]

SCOPE = "auditwire"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def attributes(record: AuditRecord) -> dict[str, Any]:
    """The record's ECS fields as flat OpenTelemetry attributes. Lists of scalars stay lists;
    anything deeper (metadata) is kept as JSON text, which attribute values cannot nest."""
    doc = to_ecs(record)
    doc.pop("@timestamp", None)
    doc.pop("message", None)
    out: dict[str, Any] = {}
    _flatten(doc, "", out)
    return out


def _flatten(value: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            if name == "auditwire.metadata":
                out[name] = json.dumps(item, ensure_ascii=False, sort_keys=True)
            else:
                _flatten(item, f"{name}.", out)
        elif isinstance(item, list):
            if all(isinstance(x, (str, bool, int, float)) for x in item):
                out[name] = list(item)
            else:
                out[name] = json.dumps(item, ensure_ascii=False)
        elif item is not None:
            out[name] = item


class OpenTelemetryLogSink:
    """A sink emitting records through an OpenTelemetry ``LoggerProvider`` (the global one
    when none is given)."""

    def __init__(self, logger_provider: LoggerProvider | None = None) -> None:
        try:
            from opentelemetry import _logs, trace
            from opentelemetry._logs import SeverityNumber
        except ImportError:
            raise MissingDependencyError("OpenTelemetryLogSink", "otel") from None
        self._trace = trace
        self._info = SeverityNumber.INFO
        self._warn = SeverityNumber.WARN
        provider = logger_provider if logger_provider is not None else _logs.get_logger_provider()
        self._provider = provider
        self._logger = provider.get_logger(SCOPE)

    def __repr__(self) -> str:
        return "OpenTelemetryLogSink()"

    def write(self, records: Sequence[AuditRecord]) -> None:
        for record in records:
            context = None
            if record.trace is not None and record.trace.span_id is not None:
                span = self._trace.NonRecordingSpan(
                    self._trace.SpanContext(
                        trace_id=int(record.trace.trace_id, 16),
                        span_id=int(record.trace.span_id, 16),
                        is_remote=True,
                        trace_flags=self._trace.TraceFlags(self._trace.TraceFlags.SAMPLED),
                    )
                )
                context = self._trace.set_span_in_context(span)
            severity = self._info if record.outcome == "success" else self._warn
            self._logger.emit(
                timestamp=(record.timestamp - _EPOCH) // _MICROSECOND * 1000,
                context=context,
                severity_number=severity,
                severity_text=severity.name,
                body=record.message,
                attributes=attributes(record),
                event_name=record.action,
            )

    def flush(self, timeout: float | None = None, *, during_outage: bool = True) -> bool:
        """The SDK's ``force_flush`` (its exporter reports no outage to give up on)."""
        force_flush = getattr(self._provider, "force_flush", None)
        if force_flush is None:
            return True
        millis = 30_000 if timeout is None else int(timeout * 1000)
        return bool(force_flush(millis))

    def close(self) -> None:
        self.flush(5.0)


#: Counters (monotonic) and gauges published by :func:`instrument_metrics`:
#: name -> (AuditStats field, unit, description).
COUNTERS = {
    "auditwire.records.accepted": ("accepted", "{record}", "Records appended to the spool"),
    "auditwire.records.delivered": ("delivered", "{record}", "Records the store has"),
    "auditwire.records.retried": ("retried", "{record}", "Records sent again after a failure"),
    "auditwire.records.dead_lettered": ("dead_lettered", "{record}", "Records refused for good"),
    "auditwire.records.dropped": ("dropped", "{record}", "Records dropped by overflow='drop'"),
}
GAUGES = {
    "auditwire.queue.size": ("queued", "{record}", "Captured requests not yet built"),
    "auditwire.spool.size": ("spooled_bytes", "By", "Undelivered data in the spool"),
    "auditwire.delivery.lag": ("lag_seconds", "s", "Age of the oldest undelivered record"),
}


def instrument_metrics(log: AuditLog, meter_provider: MeterProvider | None = None) -> None:
    """Publish ``log.stats()`` as OpenTelemetry metrics (observed at each collection, so they
    cost nothing between exports), through ``meter_provider`` or the global one."""
    try:
        from opentelemetry import metrics
        from opentelemetry.metrics import Observation
    except ImportError:
        raise MissingDependencyError("instrument_metrics", "otel") from None
    meter = (meter_provider or metrics.get_meter_provider()).get_meter(SCOPE)

    def observe(field: str) -> Any:
        def callback(options: CallbackOptions) -> list[Observation]:
            stats: AuditStats = log.stats()
            return [Observation(getattr(stats, field))]

        return callback

    for name, (field, unit, description) in COUNTERS.items():
        meter.create_observable_counter(
            name, callbacks=[observe(field)], unit=unit, description=description
        )
    for name, (field, unit, description) in GAUGES.items():
        meter.create_observable_gauge(
            name, callbacks=[observe(field)], unit=unit, description=description
        )
