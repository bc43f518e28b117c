"""Every exception auditwire raises, in one hierarchy.

Every error a caller can provoke with bad input derives from ``ValueError`` as well as from
:class:`AuditwireError`, so web handlers can turn them into 400-style answers without knowing
auditwire's hierarchy, and nothing half-valid ever reaches a store::

    AuditwireError
    ├── InvalidRecordError (ValueError)      a record or part failed validation
    │   └── UnknownActionError               a strict catalog does not know the action
    ├── InvalidQueryError (ValueError)       a filter or listing parameter was rejected
    ├── RecordNotFoundError (LookupError)    no such record visible to the caller
    ├── AccessDeniedError                    the caller may not read these records
    ├── MissingDependencyError (ImportError) an optional integration without its extra
    └── StoreError                           a store could not accept or return records
        ├── BulkWriteError                   some documents of a bulk write were refused
        ├── SendError                        a whole delivery batch failed (retryable or not)
        ├── SpoolFullError                   the spool's cap would be exceeded
        ├── SpoolUnusableError               the spool's directory cannot be used
        ├── TemplateRefusedError             the cluster refused an index template
        └── UnsupportedError                 the cluster lacks the API (a missing module)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "AccessDeniedError",
    "AuditwireError",
    "BulkWriteError",
    "ClientVersionError",
    "InvalidQueryError",
    "InvalidRecordError",
    "MissingDependencyError",
    "RecordNotFoundError",
    "SendError",
    "SpoolFullError",
    "SpoolUnusableError",
    "StoreError",
    "TemplateRefusedError",
    "UnknownActionError",
    "UnsupportedError",
]


class AuditwireError(Exception):
    """Base class of every exception auditwire raises on purpose."""


class InvalidRecordError(AuditwireError, ValueError):
    """A record (or one of its parts) failed validation; ``field`` names the offending part."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class UnknownActionError(InvalidRecordError):
    """A strict catalog was asked for an action nobody registered."""

    def __init__(self, action: str) -> None:
        super().__init__(
            "action",
            f"unknown action {action!r}; register it in the event catalog or use strict=False",
        )


class InvalidQueryError(AuditwireError, ValueError):
    """A filter value was rejected; ``parameter`` names it as the caller spelt it."""

    def __init__(self, parameter: str, problem: str) -> None:
        self.parameter = parameter
        self.problem = problem
        super().__init__(f"{parameter}: {problem}")


class RecordNotFoundError(AuditwireError, LookupError):
    """No record with that id is visible to the caller (absent, or in another tenant)."""

    def __init__(self, record_id: str) -> None:
        self.record_id = record_id
        shown = record_id if len(record_id) <= 64 else record_id[:64] + "…"
        super().__init__(f"no audit record with id {shown!r}")


class AccessDeniedError(AuditwireError):
    """The caller may not read these records (another tenant's, say); the message says why."""


class StoreError(AuditwireError):
    """A store could not accept or return records."""


class BulkWriteError(StoreError):
    """Some documents of a bulk write were refused; ``errors`` holds the per-document answers."""

    def __init__(self, message: str, errors: Sequence[dict[str, Any]]) -> None:
        self.errors = list(errors)
        super().__init__(f"{message} ({len(self.errors)} document(s) refused)")


class MissingDependencyError(AuditwireError, ImportError):
    """An optional integration was used without its extra installed."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs an optional dependency: pip install 'auditwire[{extra}]'"
        )


class SendError(StoreError):
    """A whole batch failed. ``retryable`` failures (the store away, busy or broken) are sent
    again later; others (the request itself refused) are split to find the entry at fault."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class ClientVersionError(SendError):
    """The cluster refuses the API version its client speaks (a 9.x ``elasticsearch`` client
    against an 8.x cluster). Installing the client of the cluster's major version fixes it,
    so the records wait in the spool meanwhile."""


class TemplateRefusedError(StoreError):
    """The cluster refused an index template; ``detail`` is its answer."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnsupportedError(StoreError):
    """The cluster has no handler for this call (a module missing from its distribution)."""


class SpoolFullError(StoreError):
    """The spool holds as much undelivered data as it may; nothing of the append was written."""

    def __init__(self, directory: Path, limit: int, pending: int, needed: int) -> None:
        self.directory = directory
        self.limit = limit
        super().__init__(
            f"the audit spool {directory} is full: {pending:,} bytes await delivery, the cap "
            f"is {limit:,} bytes and {needed:,} more were needed; the store has been "
            "unreachable for a while (see the delivery stats) or the cap is too small"
        )


class SpoolUnusableError(StoreError):
    """The spool's directory cannot be used (read-only, unreadable, not a directory): records
    cannot be kept for delivery. ``directory`` names it; the message says what to do."""

    def __init__(self, directory: Path, problem: str) -> None:
        self.directory = directory
        super().__init__(
            f"the audit spool {directory} cannot be used: {problem}; make it a directory the "
            "application's user can write, or point $AUDITWIRE_SPOOL (or AuditLog(spool=...)) "
            "at one"
        )
