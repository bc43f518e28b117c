"""A structlog processor that turns audit log calls into audit records.

    structlog.configure(processors=[..., AuditProcessor(audit_log), ..., renderer])
    log.info("api_key.rotated", audit=True, target={"type": "api_key", "id": "key_1"})

Events without the marker pass through untouched. A marked event becomes a record (handed to
the hand-off, never waited on) and goes on to the other processors with ``audit_id`` added and
its secrets masked as in the record, so the ordinary log line points at the record without
leaking; ``drop=True`` keeps audit events out of the ordinary log instead.

Where it goes matters, and :meth:`AuditProcessor.install` puts it there: after
``structlog.configure(...)``, ``AuditProcessor.install(audit_log)`` inserts it just before
``structlog.stdlib.filter_by_level`` (which structlog's documentation puts first), so an audit
event is recorded whatever the level of its line, and otherwise just before the last processor
(the renderer, or ``wrap_for_formatter``). Placed by hand after ``filter_by_level``, it never
sees the audit events below the logger's level. In a ``structlog.stdlib.ProcessorFormatter``
setup it belongs in structlog's chain, where it runs once per call; placed in the formatter's
own processors it runs once per handler, and the record is still made once (the
``LogRecord``'s event dict remembers it).
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
#: The key under which the event dict a ``LogRecord`` carries remembers the record made of it.
_MADE = "_auditwire_record"


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

    @classmethod
    def install(
        cls, audit_log: AuditLog, *, key: str = "audit", drop: bool = False
    ) -> AuditProcessor:
        """Insert a processor into structlog's configured chain where no audit event is lost
        (see the module docstring) and return it; an ``AuditProcessor`` already in the chain
        is replaced. Call it after ``structlog.configure``."""
        import structlog

        processor = cls(audit_log, key=key, drop=drop)
        chain = [p for p in structlog.get_config()["processors"] if not isinstance(p, cls)]
        if structlog.stdlib.filter_by_level in chain:
            at = chain.index(structlog.stdlib.filter_by_level)
        else:
            at = max(len(chain) - 1, 0)
        chain.insert(at, processor)
        structlog.configure(processors=chain)
        return processor

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        if not event_dict.get(self.key) or "audit_id" in event_dict:
            return event_dict
        del event_dict[self.key]
        # Placed in a ProcessorFormatter, this runs once per handler, each time on a copy of
        # the event dict the LogRecord carries: that dict remembers the record made first.
        shared = getattr(event_dict.get("_record"), "msg", None)
        record = event_dict.pop(_MADE, None)
        if record is None:
            try:
                record = build_from_log(self.audit_log, event_dict.get("event"), event_dict)  # type: ignore[arg-type]
            except InvalidRecordError as exc:
                # A log call never breaks the code that made it: the failure is logged and
                # counted (``stats().capture_failures``), and the line goes on.
                self.audit_log.handoff.note_failure(f"an audit log call made no record: {exc}")
                event_dict["audit_error"] = str(exc)
                return event_dict
            self.audit_log.submit(record)
            if isinstance(shared, dict):
                shared[_MADE] = record
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
