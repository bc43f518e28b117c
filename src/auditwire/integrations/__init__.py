"""Doors for code other than the middleware: logging, structlog and OpenTelemetry.

One module per library integrated, each importing its library only when used:
:mod:`~auditwire.integrations.logging` (stdlib logging), :mod:`~auditwire.integrations.structlog`,
:mod:`~auditwire.integrations.otel`; :mod:`~auditwire.integrations.log_calls` is what the two
logging routes share.
"""

from __future__ import annotations

__all__: list[str] = []
