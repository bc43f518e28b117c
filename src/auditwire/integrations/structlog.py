"""A structlog processor that turns audit log calls into audit records.

    structlog.configure(processors=[..., AuditProcessor(audit_log), ..., renderer])
    log.info("api_key.rotated", audit=True, target={"type": "api_key", "id": "key_1"})

Events without the marker pass through untouched. A marked event becomes a record (handed to
the hand-off, never waited on) and goes on to the other processors with ``audit_id`` added and
its secrets masked as in the record, so the ordinary log line points at the record without
leaking; ``drop=True`` keeps audit events out of the ordinary log instead.

With ``structlog.stdlib.ProcessorFormatter``, put the processor in the structlog chain (before
``wrap_for_formatter``): it then runs once per call, however many handlers format the line.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from auditwire.errors import InvalidRecordError, MissingDependencyError
from auditwire.integrations.log_calls import build_from_log

if TYPE_CHECKING:
    from auditwire.audit_log import AuditLog

__all__ = [
    "AuditProcessor",
    "EventDict",
]

EventDict = MutableMapping[str, Any]


class AuditProcessor:
    """Processor for events carrying ``audit=True`` (the marker key is configurable)."""

    __slots__ = ("_drop_event", "audit_log", "drop", "key")

    def __init__(self, audit_log: AuditLog, *, key: str = "audit", drop: bool = False) -> None:
        try:
            from structlog import DropEvent
        except ImportError:
            raise MissingDependencyError("AuditProcessor", "structlog") from None
        self.audit_log = audit_log
        self.key = key
        self.drop = drop
        self._drop_event = DropEvent

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        if not event_dict.get(self.key) or "audit_id" in event_dict:
            return event_dict
        del event_dict[self.key]
        try:
            record = build_from_log(self.audit_log, event_dict.get("event"), event_dict)  # type: ignore[arg-type]
        except InvalidRecordError as exc:
            # A log call never breaks the code that made it: the failure is logged and
            # counted (``stats().capture_failures``), and the line goes on.
            self.audit_log.handoff.note_failure(f"an audit log call made no record: {exc}")
            event_dict["audit_error"] = str(exc)
            return event_dict
        self.audit_log.submit(record)
        if self.drop:
            raise self._drop_event
        # The ordinary line must not leak what the record masked (``apiKey="sk_live_..."``).
        for key, value in record.metadata.items():
            if key in event_dict:
                event_dict[key] = value
        if isinstance(event_dict.get("metadata"), dict):
            event_dict["metadata"] = {k: record.metadata.get(k) for k in event_dict["metadata"]}
        event_dict["audit_id"] = record.id
        return event_dict
