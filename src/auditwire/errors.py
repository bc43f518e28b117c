"""The exceptions auditwire raises.

Every error a caller can provoke with bad input derives from ``ValueError`` as well as from
:class:`AuditwireError`, so web handlers can turn them into 400-style answers without knowing
auditwire's hierarchy, and nothing half-valid ever reaches a store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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
        super().__init__(f"no audit record with id {record_id!r}")


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
