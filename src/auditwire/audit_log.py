"""The explicit API: ``AuditLog.record(...)``, ``search(...)``, ``get(id)``.

For events that are not one HTTP request (background jobs, CLI actions) and as the one place
where the middleware and the logging integrations hand their records over. ``record`` builds
and validates the whole record before any store sees it: an invalid call raises and writes
nothing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from auditwire._time import utcnow
from auditwire.aggregation import TimeBucket, TopValue
from auditwire.builder import RecordBuilder, RecordFields
from auditwire.catalog import EventCatalog
from auditwire.delivery.fanout import FanOut
from auditwire.delivery.handoff import Deferred, HandOff, HandOffStats, Overflow
from auditwire.delivery.pipeline import spooled
from auditwire.delivery.plan import DeliveryStats, Pipeline
from auditwire.errors import InvalidQueryError, StoreError
from auditwire.integrity.prune import pruned_ranges
from auditwire.integrity.sealer import Integrity, Sealer
from auditwire.query import AuditQuery
from auditwire.record import AuditRecord
from auditwire.redaction import Redactor
from auditwire.retention import RetentionPolicy, RetentionResult
from auditwire.stores import open_store
from auditwire.stores.base import Chained, Destination, Flushable, Retaining, Sink, Store

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["AuditLog", "AuditStats"]


@dataclass(frozen=True, slots=True)
class AuditStats:
    """Where records are between capture and the store; see :meth:`AuditLog.stats`."""

    queued: int  # captured, waiting to be built (the middleware's hand-off)
    overflowed: int  # hand-offs that found the queue full (then spooled, waited or dropped)
    dropped: int  # dropped by overflow="drop"
    capture_failures: int  # captured requests the hand-off could not build or write (logged)
    accepted: int  # in the spool of a remote store
    delivered: int
    retried: int
    dead_lettered: int
    spooled_bytes: int  # undelivered, on local disk
    lag_seconds: float  # age of the oldest undelivered record
    delivery_failures: int
    replayed_journals: int  # spools of stopped processes delivered
    spool_damaged: int  # frames lost to damage on disk (each logged with its place) by this one
    last_error: str | None
    last_delivery: str | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


#: The hand-off's figures in :class:`AuditStats`, by their names there; the delivery's keep
#: theirs, but for the one renamed below.
_HANDOFF_FIGURES = {
    "queued": "pending",
    "overflowed": "overflowed",
    "dropped": "dropped",
    "capture_failures": "failed",
}
_DELIVERY_RENAMED = {"failures": "delivery_failures", "damaged": "spool_damaged"}


class AuditLog:
    """Records audit events into a store and reads them back.

    ``store`` is a store object or a URL (see :func:`auditwire.stores.open_store`); without one,
    ``$AUDITWIRE_STORE`` or the embedded SQLite file ``auditwire.db`` is used. A remote store
    (Elasticsearch, OpenSearch) is written through a
    :class:`~auditwire.delivery.pipeline.Delivery` spooling under ``spool`` (default
    :func:`~auditwire.delivery.spool.default_root`), one directory per destination; pass a
    ``Delivery`` (or an :class:`~auditwire.delivery.aio.AsyncDelivery`) as ``store`` to tune it,
    or a
    :class:`~auditwire.delivery.fanout.FanOut` to write to several. ``overflow`` is what happens
    when the middleware's hand-off queue is full (see :mod:`auditwire.delivery.handoff`). ``strict``
    makes unknown actions an error; ``secret_keys``/``hidden_keys`` extend the metadata keys
    that are masked (to the last four characters) or hidden entirely. ``integrity`` says how
    records are sealed into this process's hash chain and which key signs its checkpoints
    (default: from the environment, see :class:`~auditwire.integrity.Integrity`); every
    record this log writes is sealed.
    """

    def __init__(
        self,
        store: Sink | str | None = None,
        *,
        catalog: EventCatalog | None = None,
        strict: bool = False,
        tenant: str | None = None,
        secret_keys: Iterable[str] = (),
        hidden_keys: Iterable[str] = (),
        spool: str | os.PathLike[str] | None = None,
        overflow: Overflow = "spool",
        integrity: Integrity | None = None,
    ) -> None:
        if catalog is not None and strict and not catalog.strict:
            raise ValueError(
                "strict=True with a lenient catalog: make it EventCatalog(strict=True)"
            )
        self.catalog = catalog if catalog is not None else EventCatalog.default(strict=strict)
        opened = (
            open_store(store, catalog=self.catalog)
            if store is None or isinstance(store, str)
            else store
        )
        if not isinstance(opened, Sink):
            raise TypeError(f"store must be a Sink or a URL, not {type(store).__name__}")
        #: Where records are written: the store itself, or the pipeline delivering to it.
        self.sink: Sink = opened
        #: Where records are read from (the pipeline's destination when there is one).
        self.store: Sink = opened
        if isinstance(opened, Pipeline):
            self.store = opened.plan.destination
        elif isinstance(opened, FanOut):
            self.store = opened.primary or opened
        elif isinstance(opened, Destination):
            self.sink = spooled(opened, spool)
        if hasattr(self.store, "require_seal"):
            # Everything this log sends is sealed: a spool entry that is not was not its own.
            self.store.require_seal = True
        #: Seals what this log writes into its chain, then writes it to :attr:`sink`.
        self.sealer = Sealer(self.sink, integrity)
        self.overflow: Overflow = overflow
        self.tenant = tenant
        #: How this log's records are built (catalog, redaction, its tenant).
        self.builder = RecordBuilder(
            self.catalog,
            Redactor(secret_keys=secret_keys, hidden_keys=hidden_keys),
            tenant=tenant,
        )
        self._handoff: HandOff | None = None
        self._handoff_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AuditLog(store={self.sink!r})"

    def build(self, action: str, **fields: Unpack[RecordFields]) -> AuditRecord:
        """A validated record with the catalog's category and rendered message, not stored:
        :meth:`RecordBuilder.build <auditwire.builder.RecordBuilder.build>` with this log's
        catalog, redaction and tenant."""
        return self.builder.build(action, **fields)

    def record(self, action: str, **fields: Unpack[RecordFields]) -> AuditRecord:
        """Build, validate and store one record; returns it (with its id).

        Takes the keyword arguments of :meth:`build`. With a remote store the record is in
        the local spool when this returns (delivery follows): it survives the process being
        killed from then on.
        """
        (record,) = self.sealer.seal_and_write([self.build(action, **fields)], in_place=True)
        return record

    @property
    def handoff(self) -> HandOff:
        """The hand-off that builds and writes what :meth:`submit` hands over (its thread is
        started lazily)."""
        if self._handoff is None:
            with self._handoff_lock:
                if self._handoff is None:
                    self._handoff = HandOff(self.sealer, overflow=self.overflow)
        return self._handoff

    def submit(self, item: AuditRecord | Deferred) -> None:
        """Hand a record, or a deferred build of records, to the hand-off without waiting on
        the store (see :mod:`auditwire.delivery.handoff`). Middleware and log processors use
        this."""
        self.handoff.submit(item)

    def flush(self, timeout: float | None = None, *, during_outage: bool = True) -> bool:
        """Wait until everything submitted or recorded before the call is in the store
        (delivered, for a remote one); ``False`` on timeout. ``during_outage=False`` stops
        waiting for delivery at once while the store is failing: what was recorded is then
        safe in the spool, and the wait could only run out the timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._handoff is not None and not self._handoff.flush(timeout):
            return False
        if isinstance(self.sink, Flushable):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            return self.sink.flush(left, during_outage=during_outage)
        return True

    def stats(self) -> AuditStats:
        """Counters and health of the hand-off and of delivery (zeros where unused)."""
        handoff = self._handoff.stats() if self._handoff is not None else HandOffStats.empty()
        delivery = self.sink.stats() if isinstance(self.sink, (Pipeline, FanOut)) else None
        delivery = delivery or DeliveryStats.empty()
        figures: dict[str, Any] = {
            name: getattr(handoff, source) for name, source in _HANDOFF_FIGURES.items()
        }
        for figure in fields(DeliveryStats):
            figures[_DELIVERY_RENAMED.get(figure.name, figure.name)] = getattr(
                delivery, figure.name
            )
        figures["last_error"] = delivery.last_error or handoff.last_error
        return AuditStats(**figures)

    def write(self, records: Sequence[AuditRecord]) -> list[AuditRecord]:
        """Store records built elsewhere (by :meth:`build`, middleware or a log processor);
        returns them as sealed and stored."""
        for record in records:
            if not isinstance(record, AuditRecord):
                raise TypeError(f"expected AuditRecord, got {type(record).__name__}")
        return self.sealer.seal_and_write(records)

    def _readable(self) -> Store:
        if not isinstance(self.store, Store):
            raise StoreError(f"{self.store!r} is write-only; search needs a readable store")
        return self.store

    def _query(self, query: AuditQuery | None, filters: dict[str, Any]) -> AuditQuery:
        """The query of a read: given, or made of keyword filters; ``tenant`` defaults to this
        log's tenant, so a tenant-bound log never reads another tenant's records."""
        if query is not None and filters:
            raise TypeError("pass either an AuditQuery or keyword filters, not both")
        if query is None:
            if self.tenant is not None:
                filters.setdefault("tenant", self.tenant)
            query = AuditQuery(**filters)
        if self.tenant is not None and query.tenant != self.tenant:
            raise InvalidQueryError("tenant", "a tenant-bound log reads only its own tenant")
        return query

    def search(self, query: AuditQuery | None = None, /, **filters: Any) -> list[AuditRecord]:
        """Records matching a query (or the :class:`AuditQuery` fields as keywords), newest
        first. ``tenant`` defaults to this log's tenant."""
        return self._readable().search(self._query(query, filters))

    def timeline(
        self, interval: str, query: AuditQuery | None = None, /, **filters: Any
    ) -> list[TimeBucket]:
        """The matching records counted per ``interval`` (``minute``, ``hour``, ``day``) by
        outcome, oldest first; empty buckets left out (:mod:`auditwire.aggregation`)."""
        return self._readable().timeline(self._query(query, filters), interval)

    def top(
        self, field: str, size: int = 10, query: AuditQuery | None = None, /, **filters: Any
    ) -> list[TopValue]:
        """The ``size`` most frequent values of ``field`` (``actor_id``, ``source_ip``,
        ``action``, ``category``, ``tenant``...) among the matching records, most first."""
        return self._readable().top(self._query(query, filters), field, size)

    def get(self, record_id: str) -> AuditRecord:
        """One record by id (:class:`~auditwire.errors.RecordNotFoundError` when absent)."""
        return self._readable().get(record_id, tenant=self.tenant)

    def apply_retention(
        self,
        max_age: timedelta,
        *,
        tenants: Mapping[str, timedelta] | None = None,
        now: datetime | None = None,
    ) -> RetentionResult:
        """Remove records older than ``max_age`` (``tenants`` maps tenants to ages of their
        own): the one sanctioned removal of audit records. Run it from a scheduled job. The
        holes it leaves in the hash chains are declared first, in a prune checkpoint, so
        verification still holds."""
        if self.tenant is not None:
            raise StoreError("retention covers every tenant; run it from a log not bound to one")
        store = self.store
        if not isinstance(store, Retaining):
            raise StoreError(f"{store!r} has no retention operation")
        policy = RetentionPolicy(max_age, dict(tenants or {}))
        now = now or utcnow()
        if isinstance(store, Chained):
            # Declared, and stored, before anything goes: see auditwire.integrity.prune.
            ranges = pruned_ranges(store.chain(), policy, now)
            if ranges:
                self.sealer.declare_pruned(ranges)
                self.flush()
        return store.apply_retention(policy, now=now)

    def close(self) -> None:
        """Flush submitted records, stop the hand-off and close the store."""
        if self._handoff is not None:
            self._handoff.close()
        self.sealer.close()
        self.sink.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
