"""The store contract: what auditwire asks of the places records go to — the only part of
``stores`` that capture, delivery and listing see.

- :class:`Sink` accepts records; :class:`Store` also reads them back; :class:`Flushable`
  writes in the background and can be waited for; :class:`Retaining` applies retention;
  :class:`Chained` reads records in their writers' chain order, for verification.
- :class:`Destination` is a remote store the delivery pipeline sends encoded batches to,
  answering one :class:`ItemResult` per entry or raising :class:`SendError` for the whole
  batch; :class:`AsyncDestination` also sends from an asyncio event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from auditwire.errors import SendError

if TYPE_CHECKING:
    from auditwire.aggregation import TimeBucket, TopValue
    from auditwire.query import AuditQuery, Page
    from auditwire.record import AuditRecord
    from auditwire.retention import RetentionPolicy, RetentionResult

__all__ = [
    "AsyncDestination",
    "AsyncSender",
    "Chained",
    "Destination",
    "Flushable",
    "ItemResult",
    "Retaining",
    "SendError",
    "Sink",
    "Store",
    "delivered_status",
    "retryable_status",
]


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

    def timeline(self, query: AuditQuery, interval: str) -> list[TimeBucket]:
        """The records ``query`` matches counted per ``interval`` bucket (see
        :mod:`auditwire.aggregation`) by outcome, oldest first, empty buckets left out."""
        ...

    def top(self, query: AuditQuery, field: str, size: int = 10) -> list[TopValue]:
        """The ``size`` most frequent values of ``field`` among the records ``query``
        matches, most first (records without the field left out)."""
        ...


@runtime_checkable
class Retaining(Protocol):
    """A store that can apply a retention policy."""

    def apply_retention(
        self, policy: RetentionPolicy, *, now: datetime | None = None
    ) -> RetentionResult: ...


@runtime_checkable
class Chained(Protocol):
    """A store that reads its records' API forms, exactly as stored, in chain order: records
    without a seal first, then by writer and sequence number (see :mod:`auditwire.seal`)."""

    def chain(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        writer: str | None = None,
        first: int | None = None,
        last: int | None = None,
        unsealed: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """The API forms of the records in ``[since, until)`` (of ``writer``, numbered
        ``first`` to ``last``; or only those without a seal), exactly as stored: unsealed
        ones first, then by writer and sequence number. Verification rehashes them."""
        ...

    def writers(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[str | None]:
        """The writers of the records in ``[since, until)``, ``None`` for records without a
        seal (so verification can split the work by writer)."""
        ...


def retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def delivered_status(status: int) -> bool:
    """2xx, or 409: the store has a record with this id already (an earlier try got through)."""
    return 200 <= status < 300 or status == 409


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The store's answer for one entry of a batch: an HTTP-like status and the reason.
    ``retryable`` overrides what the status says (a store knows refusals that pass)."""

    status: int
    error: str | None = None
    retryable: bool | None = None

    @property
    def delivered(self) -> bool:
        return delivered_status(self.status)

    @property
    def worth_retrying(self) -> bool:
        return self.retryable if self.retryable is not None else retryable_status(self.status)


@runtime_checkable
class Destination(Sink, Protocol):
    """A remote store the delivery pipeline sends batches to (and that can still be written
    directly, synchronously, with ``write``)."""

    @property
    def spool_name(self) -> str:
        """Names the destination (kind, cluster, index prefix): a spool is only ever replayed
        to the destination it was written for."""
        ...

    def encode(self, record: AuditRecord) -> bytes:
        """One record as one spool entry, in the form :meth:`send` sends."""
        ...

    def send(self, payloads: Sequence[bytes]) -> Sequence[ItemResult]:
        """Send encoded entries in one request; one result per entry, in order. Raises
        :class:`SendError` when the request as a whole failed."""
        ...


#: Sends encoded entries from an event loop, as :meth:`Destination.send` does from a thread.
AsyncSender = Callable[[Sequence[bytes]], Awaitable[Sequence[ItemResult]]]


@runtime_checkable
class AsyncDestination(Destination, Protocol):
    """A destination that can also send from an asyncio event loop, through an async client
    of its kind (for :class:`~auditwire.delivery.aio.AsyncDelivery`)."""

    def async_sender(self, client: Any) -> AsyncSender:
        """A coroutine function sending as :meth:`send` does, through ``client``."""
        ...
