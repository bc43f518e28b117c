"""The OpenTelemetry trace a request ran in, for the record's ``trace`` part.

Reading the active span costs about a microsecond per request, not worth paying when nothing
traces: by default the reader exists only when OpenTelemetry is installed and a real tracer
provider is configured. The span context is noted on the request path and formatted when the
record is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from auditwire.errors import MissingDependencyError
from auditwire.record import TraceInfo

__all__ = ["SpanReader", "span_reader", "trace_info"]

SpanReader = Callable[[], Any]


def span_reader(enabled: bool | None) -> SpanReader | None:
    """A function returning the active OpenTelemetry span's context, or ``None`` when trace
    capture is off. ``enabled=None`` turns it on when OpenTelemetry is installed and a real
    tracer provider is configured; ``True`` requires OpenTelemetry."""
    if enabled is False:
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        if enabled:
            raise MissingDependencyError("trace_context=True", "otel") from None
        return None
    if enabled is None and type(trace.get_tracer_provider()).__name__ in (
        "ProxyTracerProvider",
        "NoOpTracerProvider",
    ):
        return None
    get_current_span = trace.get_current_span

    def read() -> Any:
        return get_current_span().get_span_context()

    return read


def trace_info(span_context: Any) -> TraceInfo | None:
    """The record's trace part from an OpenTelemetry span context (``None`` when invalid)."""
    if span_context is None or not span_context.is_valid:
        return None
    return TraceInfo(format(span_context.trace_id, "032x"), format(span_context.span_id, "016x"))
