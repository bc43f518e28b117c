"""The stdlib ``logging`` route, for applications without structlog.

    logger.info("api_key.rotated", extra={"audit": True, "target": {...}, "metadata": {...}})

:class:`AuditHandler` turns such records into audit records (other records are ignored), and
:class:`AuditJsonFormatter` (python-json-logger) writes them as the record's API JSON, one per
line, with any ordinary handler. Both derive the audit record from a log record the same way and
cache it on the log record, so a handler and a formatter on the same logger agree on its id.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from auditwire.errors import InvalidRecordError
from auditwire.integrations.log_calls import build_from_log
from auditwire.stores.jsonl import RECORD_LINES, json_formatter

if TYPE_CHECKING:
    from auditwire.audit_log import AuditLog
    from auditwire.record import AuditRecord

__all__ = [
    "AuditHandler",
    "AuditJsonFormatter",
    "audit_record",
]

_CACHE = "auditwire_record"
#: LogRecord attributes that are logging's own, never metadata.
_LOG_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def audit_record(
    log_record: logging.LogRecord, audit_log: AuditLog, key: str = "audit"
) -> AuditRecord | None:
    """The audit record a log record stands for, or ``None`` when it is not marked."""
    if not getattr(log_record, key, False):
        return None
    cached: AuditRecord | None = log_record.__dict__.get(_CACHE)
    if cached is None:
        fields = {
            name: value
            for name, value in vars(log_record).items()
            if name not in _LOG_RECORD_ATTRIBUTES and name not in (key, _CACHE)
        }
        action = fields.pop("action", None) or log_record.getMessage()
        cached = build_from_log(audit_log, action, fields)
        log_record.__dict__[_CACHE] = cached
    return cached


class AuditHandler(logging.Handler):
    """Hands marked log records to an :class:`~auditwire.AuditLog` (without waiting on it)."""

    def __init__(self, audit_log: AuditLog, *, key: str = "audit", level: int = logging.NOTSET):
        super().__init__(level)
        self.audit_log = audit_log
        self.key = key

    def emit(self, record: logging.LogRecord) -> None:
        try:
            built = audit_record(record, self.audit_log, self.key)
            if built is not None:
                self.audit_log.submit(built)
        except InvalidRecordError as exc:  # counted (stats().capture_failures) and logged
            self.audit_log.handoff.note_failure(f"an audit log call made no record: {exc}")
        except Exception:
            self.handleError(record)


class AuditJsonFormatter(logging.Formatter):
    """Formats marked records as the audit record's API JSON and others as ordinary JSON logs
    (python-json-logger does both)."""

    def __init__(self, audit_log: AuditLog, *, key: str = "audit", **json_options: Any) -> None:
        super().__init__()
        self.audit_log = audit_log
        self.key = key
        self._records = json_formatter("AuditJsonFormatter", **RECORD_LINES)
        self._logs = json_formatter("AuditJsonFormatter", **json_options)

    def format(self, record: logging.LogRecord) -> str:
        built = audit_record(record, self.audit_log, self.key)
        if built is None:
            return self._logs.format(record)
        line = logging.LogRecord(record.name, record.levelno, "", 0, built.to_api(), None, None)
        return self._records.format(line)
