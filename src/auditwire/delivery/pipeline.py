"""Delivery to a remote store: spool first, then send in batches, retry until delivered.

:class:`Delivery` is a sink. Its ``write`` encodes the records for their destination and
appends them to the local :class:`~auditwire.delivery.spool.Spool` — a local file append, never
a network call — and returns: a record ``write`` accepted survives the process being killed. A
worker thread drives the :class:`~auditwire.delivery.plan.DeliveryPlan`: it reads the spool in
order, sends batches (by count, bytes and time), and advances the spool's acknowledged position
only once every entry of a batch is delivered or dead-lettered.

Sending is at least once; the destination makes it exactly once: Elasticsearch writes are
``create`` operations with the record id into the partition named by the record's time, so
a record sent twice is refused as a duplicate (409), which counts as delivered. Nothing is
dropped: while the store is away, records wait in the spool, and a spool left by a dead
process is replayed by the next one that starts.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from auditwire._fork import renew_in_child
from auditwire.delivery.client_logs import WORKER_NAME, quiet_client_logs
from auditwire.delivery.plan import (
    Backoff,
    DeliveryPlan,
    DeliveryStats,
    Plan,
    PlanOptions,
    SendBatch,
    Wait,
)
from auditwire.delivery.spool import Spool, default_root
from auditwire.errors import StoreError
from auditwire.stores.base import Destination

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from auditwire.record import AuditRecord

__all__ = ["Backoff", "Delivery", "DeliveryStats", "spooled"]


def spooled(destination: Destination, root: str | os.PathLike[str] | None = None) -> Delivery:
    """``destination`` behind a pipeline with the default settings, spooling under ``root``
    (default :func:`~auditwire.delivery.spool.default_root`) in a directory of its own."""
    base = default_root() if root is None else Path(root)
    return Delivery(destination, Spool(base / destination.spool_name))


class Delivery:
    """A sink that spools records and delivers them to ``destination`` from a worker thread.

    ``spool`` is a :class:`Spool` or its directory; the options
    (:class:`~auditwire.delivery.plan.PlanOptions`: batch size and bytes, linger, backoff,
    dead-letter file) are the plan's.
    """

    def __init__(
        self,
        destination: Destination,
        spool: Spool | str | os.PathLike[str],
        **options: Unpack[PlanOptions],
    ) -> None:
        self._wake = threading.Event()
        self.plan = DeliveryPlan(destination, spool, wake=self._poke, **options)
        self._closed = False
        self._lock = threading.Lock()
        self._start()
        atexit.register(self.close)
        renew_in_child(self, Delivery._after_fork)

    @property
    def destination(self) -> Destination:
        return self.plan.destination

    @property
    def spool(self) -> Spool:
        return self.plan.spool

    @property
    def dead_letter_path(self) -> Path:
        return self.plan.dead_letter_path

    def __repr__(self) -> str:
        return f"Delivery({self.destination!r}, {self.spool!r})"

    def _start(self) -> None:
        self._pid = os.getpid()
        # Adopted before the worker starts, so a flush right after start-up waits for them.
        self.plan.adopt_orphans()
        quiet_client_logs()
        self._thread = threading.Thread(target=self._run, name=WORKER_NAME, daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def _ensure_running(self) -> None:
        """In a forked child the parent's worker is gone: start afresh, own journal and all
        (the parent goes on delivering its own spool)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._wake = threading.Event()
                    self.plan = self.plan.renewed(self._poke)
                    self._start()

    # -- the sink ---------------------------------------------------------------------------

    def write(self, records: Sequence[AuditRecord]) -> None:
        """Append records to the spool (all or none) and return; delivery follows."""
        if self._closed:
            raise StoreError("this delivery pipeline is closed")
        self._ensure_running()
        self.plan.accept(records)

    def _poke(self, hurry: bool) -> None:
        """Wake the worker: records arrived (or a flush hurries, the plan's flag set)."""
        self._wake.set()

    def flush(self, timeout: float | None = None, *, during_outage: bool = True) -> bool:
        """Wait until everything written before the call is delivered (or dead-lettered), and
        any spool left by a dead process too; ``False`` on timeout or a stopped worker.
        ``during_outage=False`` gives up at once while the store is failing (the records are
        safe in the spool either way)."""
        self._ensure_running()
        return self.plan.wait_delivered(
            timeout, during_outage=during_outage, alive=self._thread.is_alive
        )

    def close(self, timeout: float | None = 30.0) -> None:
        """Deliver what can be delivered within ``timeout``, then stop. While the store is
        failing it does not wait: what is left stays in the spool, and is delivered by the
        next process that starts on it (the log line says how much)."""
        if self._closed:
            return
        owner = self._pid == os.getpid()
        if owner:
            self.plan.last_flush(timeout, self._thread.is_alive)
            self.plan.stopping.set()
            self._wake.set()
            self._thread.join(timeout=5.0)
        self._closed = True
        atexit.unregister(self.close)
        self.plan.release(owner=owner)

    def stats(self) -> DeliveryStats:
        return self.plan.stats()

    # -- the worker -------------------------------------------------------------------------

    def _run(self) -> None:
        """The worker thread: runs the delivery plan, doing its waits and sends itself."""
        plan = self.plan
        while not plan.stopping.is_set():
            try:
                plan.housekeep()
                self._wake.clear()
                self._drive(plan.step())
            except Exception as exc:  # the worker must outlive any bug; the spool keeps the data
                plan.failures.note(f"the delivery worker hit an unexpected error: {exc!r}")
                plan.stopping.wait(1.0)

    def _drive(self, plan: Plan) -> object:
        """Carry out a plan's waits and sends on this thread."""
        answer: object = None
        while True:
            try:
                step = plan.send(answer)
            except StopIteration as done:
                return done.value
            if isinstance(step, SendBatch):
                try:
                    answer = self.destination.send(step.payloads)
                except Exception as exc:
                    answer = exc
            elif isinstance(step, Wait):
                answer = (self.plan.hurry if step.hurry else self._wake).wait(step.seconds)
            else:
                answer = self.plan.stopping.wait(step.seconds)
