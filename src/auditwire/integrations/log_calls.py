"""Audit records from log calls: what structlog and stdlib logging integrations share.

A log call marked as an audit event names the action as its event/message and passes the
record's fields as keywords (``actor``, ``target``, ``outcome``, ``category``, ``tenant``,
``metadata``); other keywords become metadata. Inside an audited request the record is
enriched from the request's :class:`~auditwire.capture.context.AuditContext`: the actor and
tenant when the call does not name them, the client IP, user agent, request id and trace ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from auditwire.capture.context import current
from auditwire.errors import InvalidRecordError

if TYPE_CHECKING:
    from auditwire.audit_log import AuditLog
    from auditwire.record import AuditRecord

__all__ = ["FRAMEWORK_KEYS", "RECORD_FIELDS", "build_from_log"]

#: Keywords that are record fields rather than metadata.
RECORD_FIELDS = frozenset({"actor", "target", "outcome", "category", "tenant", "metadata"})
#: Keys logging frameworks add that are not the caller's data.
FRAMEWORK_KEYS = frozenset(
    {
        "event",
        "timestamp",
        "level",
        "logger",
        "logger_name",
        "exc_info",
        "stack_info",
        "stack",
        "exception",
        "positional_args",
        "_record",
        "_from_structlog",
        "audit_id",
    }
)


def build_from_log(audit_log: AuditLog, action: str, fields: Mapping[str, Any]) -> AuditRecord:
    """A validated record for a log call; see the module docstring. Inside a request, the
    request's context counts it (a request its log calls record needs no record of its own)."""
    if not isinstance(action, str) or not action:
        raise InvalidRecordError("action", "an audit log call needs the action as its event")
    explicit = fields.get("metadata")
    if explicit is not None and not isinstance(explicit, Mapping):
        raise InvalidRecordError("metadata", f"must be a mapping, not {type(explicit).__name__}")
    metadata = {
        key: value
        for key, value in fields.items()
        if key not in RECORD_FIELDS and key not in FRAMEWORK_KEYS and not key.startswith("_")
    }
    metadata.update(explicit or {})
    context = current()
    facts = context.request if context is not None else None
    actor = fields.get("actor") or (context.actor if context is not None else None)
    tenant = fields.get("tenant") or (context.tenant if context is not None else None)
    record = audit_log.build(
        action,
        actor=actor,
        target=fields.get("target"),
        outcome=fields.get("outcome", "success"),
        category=fields.get("category"),
        tenant=tenant,
        metadata=metadata,
        **(facts.record_fields() if facts is not None else {}),
    )
    if context is not None:
        context.logged += 1
    return record
