"""What auditwire asks of the places records go to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from auditwire.query import AuditQuery, Page
    from auditwire.record import AuditRecord


@runtime_checkable
class Sink(Protocol):
    """Accepts records. Writing the same record twice must leave one copy (idempotent by id),
    so a retried write never duplicates."""

    def write(self, records: Sequence[AuditRecord]) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Flushable(Protocol):
    """A sink that writes in the background and can be waited for. ``during_outage=False``
    asks it to stop waiting at once while its store is failing (what it holds is safe)."""

    def flush(self, timeout: float | None = None, *, during_outage: bool = True) -> bool: ...


@runtime_checkable
class Store(Sink, Protocol):
    """A sink that can also be read back."""

    def get(self, record_id: str, *, tenant: str | None = None) -> AuditRecord:
        """The record with that id; :class:`~auditwire.errors.RecordNotFoundError` when it is
        absent or belongs to another tenant than ``tenant`` (when given)."""
        ...

    def search(self, query: AuditQuery) -> list[AuditRecord]:
        """Records matching ``query``, newest first, at most ``query.limit``, after
        ``query.after`` when given (keyset paging)."""
        ...

    def page(self, query: AuditQuery, page: int = 1) -> Page:
        """Page ``page`` (from 1) of ``query.limit`` records, with the total."""
        ...

    def count(self, query: AuditQuery | None = None) -> int: ...
