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
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from auditwire.catalog import EventCatalog
from auditwire.delivery import Delivery, DeliveryStats, Destination, spooled
from auditwire.errors import InvalidQueryError, InvalidRecordError, StoreError
from auditwire.fanout import FanOut
from auditwire.handoff import BackgroundWriter, Deferred, Overflow, WriterStats
from auditwire.query import AuditQuery
from auditwire.record import (
    MAX_MESSAGE,
    MAX_TEXT,
    Actor,
    AuditRecord,
    DeviceInfo,
    Outcome,
    RequestInfo,
    Target,
    TraceInfo,
    _text,
    normalise_metadata,
)
from auditwire.redaction import Redactor
from auditwire.retention import Retaining, RetentionPolicy, RetentionResult
from auditwire.stores import Sink, Store, open_store
from auditwire.stores.base import Flushable

#: The actor of a record nobody acted in: the application itself (records are immutable, so
#: one instance serves them all).
SYSTEM = Actor.system()


def _actor(actor: Actor | Mapping[str, Any] | None) -> Actor:
    if actor is None:
        return SYSTEM
    return actor if isinstance(actor, Actor) else Actor.from_api(actor)


def _target(target: Target | Mapping[str, Any] | None) -> Target | None:
    if target is None or isinstance(target, Target):
        return target
    return Target.from_api(target)


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
    replayed_journals: int  # spools of stopped processes delivered by this one
    last_error: str | None
    last_delivery: str | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class AuditLog:
    """Records audit events into a store and reads them back.

    ``store`` is a store object or a URL (see :func:`auditwire.stores.open_store`); without one,
    ``$AUDITWIRE_STORE`` or the embedded SQLite file ``auditwire.db`` is used. A remote store
    (Elasticsearch, OpenSearch) is written through a :class:`~auditwire.delivery.Delivery`
    pipeline spooling under ``spool`` (default :func:`~auditwire.spool.default_root`), one
    directory per destination; pass a ``Delivery`` as ``store`` to tune it, or a
    :class:`~auditwire.fanout.FanOut` to write to several. ``overflow`` is what happens
    when the middleware's hand-off queue is full (see :mod:`auditwire.handoff`). ``strict``
    makes unknown actions an error; ``secret_keys``/``hidden_keys`` extend the metadata keys
    that are masked (to the last four characters) or hidden entirely.
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
        if isinstance(opened, Delivery):
            self.store = opened.destination
        elif isinstance(opened, FanOut):
            self.store = opened.primary or opened
        elif isinstance(opened, Destination):
            self.sink = spooled(opened, spool)
        self.overflow: Overflow = overflow
        self.tenant = tenant
        self._redactor = Redactor(secret_keys=secret_keys, hidden_keys=hidden_keys)
        self._writer: BackgroundWriter | None = None
        self._writer_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AuditLog(store={self.sink!r})"

    def build(
        self,
        action: str,
        *,
        actor: Actor | Mapping[str, Any] | None = None,
        target: Target | Mapping[str, Any] | None = None,
        outcome: Outcome = "success",
        metadata: Mapping[str, Any] | None = None,
        category: str | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        tenant: str | None = None,
        timestamp: datetime | None = None,
        message: str | None = None,
        request: RequestInfo | None = None,
        trace: TraceInfo | None = None,
        device: DeviceInfo | None = None,
    ) -> AuditRecord:
        """A validated record with the catalog's category and rendered message, not stored."""
        if not isinstance(action, str) or not action:
            raise InvalidRecordError("action", "is required")
        event = self.catalog.resolve(action)
        if event is not None and category is not None and category != event.category:
            raise InvalidRecordError(
                "category",
                f"{category!r} contradicts the catalog, which files {action!r} under "
                f"{event.category!r}",
            )
        category = event.category if event is not None else category
        if category is None:
            raise InvalidRecordError(
                "category", f"is required for {action!r}, which is not in the event catalog"
            )
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidRecordError(
                "metadata", f"must be a mapping, not {type(metadata).__name__}"
            )
        extra: dict[str, Any] = {}
        if timestamp is not None:
            extra["timestamp"] = timestamp
        record = AuditRecord(
            action=action,
            category=category,
            actor=_actor(actor),
            target=_target(target),
            outcome=outcome,
            ip_address=ip_address,
            user_agent=user_agent,
            metadata=self._redactor.redact(metadata or {}),
            message=message,
            tenant=tenant if tenant is not None else self.tenant,
            request=request,
            trace=trace,
            device=device,
            **extra,
        )
        if message is None and event is not None:
            record._set_message(event.render(record)[:MAX_MESSAGE])
        return record

    def build_captured(
        self,
        action: str,
        *,
        actor: Actor,
        target: Target | None,
        outcome: Outcome,
        metadata: dict[str, Any],
        category: str | None,
        ip_address: str | None,
        user_agent: str | None,
        tenant: str | None,
        timestamp: datetime,
        request: RequestInfo,
        trace: TraceInfo | None,
        device: DeviceInfo | None,
    ) -> AuditRecord:
        """:meth:`build` for what the middleware captured, every request: its parts are valid
        by construction (validated when a handler set them, sanitised from the request, or
        the catalog's), so only what a hook or handler could leave unchecked is checked here —
        the tenant, and metadata (redacted and normalised). Anything unusual (an action
        outside the catalog, a contradicting category) takes :meth:`build`'s full path."""
        event = self.catalog.resolve(action)
        if event is None or (category is not None and category != event.category):
            return self.build(
                action, actor=actor, target=target, outcome=outcome, metadata=metadata,
                category=category, ip_address=ip_address, user_agent=user_agent, tenant=tenant,
                timestamp=timestamp, request=request, trace=trace, device=device,
            )  # fmt: skip
        if tenant is None:
            tenant = self.tenant
        else:
            _text("tenant", tenant, MAX_TEXT)
        record = AuditRecord._sanitised(
            action,
            event.category,
            actor,
            target,
            outcome,
            ip_address,
            user_agent,
            normalise_metadata(self._redactor.redact(metadata)) if metadata else {},
            timestamp,
            tenant,
            request,
            trace,
            device,
        )
        record._set_message(event.render(record)[:MAX_MESSAGE])
        return record

    def record(self, action: str, **fields: Any) -> AuditRecord:
        """Build, validate and store one record; returns it (with its id).

        Takes the keyword arguments of :meth:`build`. With a remote store the record is in
        the local spool when this returns (delivery follows): it survives the process being
        killed from then on.
        """
        record = self.build(action, **fields)
        self.sink.write([record])
        return record

    @property
    def writer(self) -> BackgroundWriter:
        """The hand-off that builds and writes what :meth:`submit` hands over (its thread is
        started lazily)."""
        if self._writer is None:
            with self._writer_lock:
                if self._writer is None:
                    self._writer = BackgroundWriter(self.sink, overflow=self.overflow)
        return self._writer

    def submit(self, item: AuditRecord | Deferred) -> None:
        """Hand a record, or the raw facts of one, to the hand-off without waiting on the
        store (see :mod:`auditwire.handoff`). Middleware and log processors use this."""
        self.writer.submit(item)

    def flush(self, timeout: float | None = None, *, during_outage: bool = True) -> bool:
        """Wait until everything submitted or recorded before the call is in the store
        (delivered, for a remote one); ``False`` on timeout. ``during_outage=False`` stops
        waiting for delivery at once while the store is failing: what was recorded is then
        safe in the spool, and the wait could only run out the timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._writer is not None and not self._writer.flush(timeout):
            return False
        if isinstance(self.sink, Flushable):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            return self.sink.flush(left, during_outage=during_outage)
        return True

    def stats(self) -> AuditStats:
        """Counters and health of the hand-off and of delivery (zeros where unused)."""
        writer = self._writer.stats() if self._writer is not None else WriterStats.empty()
        delivery = self.sink.stats() if isinstance(self.sink, (Delivery, FanOut)) else None
        delivery = delivery or DeliveryStats.empty()
        return AuditStats(
            queued=writer.pending,
            overflowed=writer.overflowed,
            dropped=writer.dropped,
            capture_failures=writer.failed,
            accepted=delivery.accepted,
            delivered=delivery.delivered,
            retried=delivery.retried,
            dead_lettered=delivery.dead_lettered,
            spooled_bytes=delivery.spooled_bytes,
            lag_seconds=delivery.lag_seconds,
            delivery_failures=delivery.failures,
            replayed_journals=delivery.replayed_journals,
            last_error=delivery.last_error or writer.last_error,
            last_delivery=delivery.last_delivery,
        )

    def write(self, records: Sequence[AuditRecord]) -> None:
        """Store records built elsewhere (by :meth:`build`, middleware or a log processor)."""
        for record in records:
            if not isinstance(record, AuditRecord):
                raise TypeError(f"expected AuditRecord, got {type(record).__name__}")
        self.sink.write(records)

    def _readable(self) -> Store:
        if not isinstance(self.store, Store):
            raise StoreError(f"{self.store!r} is write-only; search needs a readable store")
        return self.store

    def search(self, query: AuditQuery | None = None, /, **filters: Any) -> list[AuditRecord]:
        """Records matching a query (or the :class:`AuditQuery` fields as keywords), newest
        first. ``tenant`` defaults to this log's tenant, so a tenant-bound log never reads
        another tenant's records."""
        if query is not None and filters:
            raise TypeError("pass either an AuditQuery or keyword filters, not both")
        if query is None:
            if self.tenant is not None:
                filters.setdefault("tenant", self.tenant)
            query = AuditQuery(**filters)
        if self.tenant is not None and query.tenant != self.tenant:
            raise InvalidQueryError("tenant", "a tenant-bound log reads only its own tenant")
        return self._readable().search(query)

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
        own): the one sanctioned removal of audit records. Run it from a scheduled job."""
        if self.tenant is not None:
            raise StoreError("retention covers every tenant; run it from a log not bound to one")
        store = self.store
        if not isinstance(store, Retaining):
            raise StoreError(f"{store!r} has no retention operation")
        return store.apply_retention(RetentionPolicy(max_age, dict(tenants or {})), now=now)

    def close(self) -> None:
        """Flush submitted records, stop the writer and close the store."""
        if self._writer is not None:
            self._writer.close()
        self.sink.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
