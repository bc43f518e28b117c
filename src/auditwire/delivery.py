"""Delivery to a remote store: spool first, then send in batches, retry until delivered.

:class:`Delivery` is a sink. Its ``write`` encodes the records for their destination and
appends them to the local :class:`~auditwire.spool.Spool` — a local file append, never a network
call — and returns: a record ``write`` accepted survives the process being killed. A worker
thread reads the spool in order, sends batches (by count, bytes and time), and advances the
spool's acknowledged position only once every entry of a batch is delivered or dead-lettered.

Sending is at least once; the destination makes it exactly once: Elasticsearch writes are
``create`` operations with the record id into the partition named by the record's time, so
a record sent twice is refused as a duplicate (409), which counts as delivered.

Failures are classified per entry: a connection error, timeout, 429 or 5xx is retried with
capped exponential backoff and jitter, resending only the entries that failed; an entry the
store refuses for good (a mapping error) goes to the dead-letter file with the reason. A whole
request refused for good (413, 400) is split in halves until the offending entry is alone.
Nothing is dropped: while the store is away, records wait in the spool, and a spool left by a
dead process is replayed by the next one that starts.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from auditwire._fork import renew_in_child
from auditwire.errors import StoreError
from auditwire.failures import FailureLog
from auditwire.spool import Entry, Journal, Spool, default_root
from auditwire.stores.base import Sink

if TYPE_CHECKING:
    from auditwire.record import AuditRecord

logger = logging.getLogger("auditwire")

#: Seconds between looks for journals left by dead processes (another worker may die).
RESCAN_EVERY = 30.0
#: Seconds between the structured stats lines logged while something changes.
STATS_EVERY = 60.0


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


class SendError(StoreError):
    """A whole batch failed. ``retryable`` failures (the store away, busy or broken) are sent
    again later; others (the request itself refused) are split to find the entry at fault."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@runtime_checkable
class Destination(Sink, Protocol):
    """A remote store that :class:`Delivery` sends batches to (and that can still be written
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


def retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def delivered_status(status: int) -> bool:
    """2xx, or 409: the store has a record with this id already (an earlier try got through)."""
    return 200 <= status < 300 or status == 409


@dataclass(frozen=True, slots=True)
class Send:
    """A plan's step: send these payloads; the answer is the results or the exception."""

    payloads: list[bytes]


@dataclass(frozen=True, slots=True)
class Wait:
    """A plan's step: wait until records arrive (or, ``hurry``, a flush asks to hurry)."""

    seconds: float
    hurry: bool = False


@dataclass(frozen=True, slots=True)
class Sleep:
    """A plan's step: back off; the answer says whether the pipeline is stopping."""

    seconds: float


Step = Send | Wait | Sleep
Plan = Generator[Step, object, object]
"""What the worker does, as steps for a driver: a thread (:class:`Delivery`) or a task on an
event loop (:class:`auditwire.aio.AsyncDelivery`) share every decision this way."""


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    """What the pipeline has done since this process started it."""

    accepted: int  # records appended to the spool
    delivered: int
    retried: int  # entries sent again after a failure
    dead_lettered: int
    spooled_bytes: int  # undelivered data in this process's spool
    lag_seconds: float  # age of the oldest undelivered entry; 0 when caught up
    replayed_journals: int  # journals of dead processes delivered
    failures: int
    last_error: str | None
    last_delivery: str | None  # ISO time of the last delivered batch

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def empty(cls) -> DeliveryStats:
        return cls(0, 0, 0, 0, 0, 0.0, 0, 0, None, None)


def spooled(destination: Destination, root: str | os.PathLike[str] | None = None) -> Delivery:
    """``destination`` behind a pipeline with the default settings, spooling under ``root``
    (default :func:`~auditwire.spool.default_root`) in a directory of its own."""
    base = default_root() if root is None else Path(root)
    return Delivery(destination, Spool(base / destination.spool_name))


class Backoff:
    """Capped exponential backoff with jitter: attempt ``n`` waits between half and all of
    ``min(maximum, initial * 2**n)``, so many processes retrying together spread out."""

    def __init__(self, initial: float = 0.1, maximum: float = 30.0) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum

    def delay(self, attempt: int) -> float:
        ceiling = min(self.maximum, self.initial * 2.0 ** min(attempt, 32))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class Delivery:
    """A sink that spools records and delivers them to ``destination`` in the background.

    ``spool`` is a :class:`Spool` or its directory. ``batch_size`` and ``batch_bytes`` bound a
    request; a batch is sent once full or when its oldest entry has waited ``linger`` seconds.
    ``dead_letter`` is the file of refused entries (default: ``dead-letter.ndjson`` beside the
    journals).
    """

    def __init__(
        self,
        destination: Destination,
        spool: Spool | str | os.PathLike[str],
        *,
        batch_size: int = 500,
        batch_bytes: int = 5 * 1024**2,
        linger: float = 0.05,
        backoff: Backoff | None = None,
        dead_letter: str | os.PathLike[str] | None = None,
    ) -> None:
        if batch_size < 1 or batch_bytes < 1:
            raise ValueError("batch_size and batch_bytes must be positive")
        self.destination = destination
        self.spool = spool if isinstance(spool, Spool) else Spool(spool)
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.linger = linger
        self.backoff = backoff if backoff is not None else Backoff()
        self.dead_letter_path = (
            Path(dead_letter)
            if dead_letter is not None
            else self.spool.directory / "dead-letter.ndjson"
        )
        self._failures = FailureLog()
        self._init_state()
        self._start()
        atexit.register(self.close)
        renew_in_child(self, Delivery._renew_lock)

    def _renew_lock(self) -> None:
        self._lock = threading.Lock()

    def _init_state(self) -> None:
        self._pid = os.getpid()
        self._wake = threading.Event()
        self._hurry = threading.Event()
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self._orphans: list[Journal] = []
        self._accepted = 0
        self._delivered = 0
        self._retried = 0
        self._dead_lettered = 0
        self._replayed = 0
        self._oldest_pending_ms: int | None = None
        self._last_delivery: float | None = None
        self._outage_since: float | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._next_scan = time.monotonic() + RESCAN_EVERY
        self._next_stats = time.monotonic() + STATS_EVERY
        self._logged: DeliveryStats | None = None

    def __repr__(self) -> str:
        return f"Delivery({self.destination!r}, {self.spool!r})"

    def _start(self) -> None:
        # Adopted before the worker starts, so a flush right after start-up waits for them.
        self._adopt_orphans()
        self._thread = threading.Thread(target=self._run, name="auditwire-delivery", daemon=True)
        self._thread.start()

    def _ensure_running(self) -> None:
        """In a forked child the parent's worker is gone: start afresh, own journal and all
        (the parent goes on delivering its own spool)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._init_state()
                    self._start()

    # -- the sink ---------------------------------------------------------------------------

    def write(self, records: Sequence[AuditRecord]) -> None:
        """Append records to the spool (all or none) and return; delivery follows."""
        if self._closed:
            raise StoreError("this delivery pipeline is closed")
        self._ensure_running()
        if not records:
            return
        payloads = [self.destination.encode(record) for record in records]
        self.spool.append(payloads)
        with self._lock:
            self._accepted += len(payloads)
        self._poke()

    def _poke(self, *, hurry: bool = False) -> None:
        """Wake the worker: records arrived (or, ``hurry``, a flush waits)."""
        if hurry:
            self._hurry.set()
        self._wake.set()

    def flush(self, timeout: float | None = None, *, during_outage: bool = True) -> bool:
        """Wait until everything written before the call is delivered (or dead-lettered), and
        any spool left by a dead process too; ``False`` on timeout or a stopped worker.
        ``during_outage=False`` gives up at once while the store is failing (the records are
        safe in the spool either way)."""
        self._ensure_running()
        journal = self.spool.current()
        target = journal.end if journal is not None else None
        deadline = None if timeout is None else time.monotonic() + timeout
        self._poke(hurry=True)
        try:
            with self._progress:
                while self._orphans or (journal and target and journal.acked < target):
                    if not self._worker_alive():
                        return False
                    if not during_outage and self._outage_since is not None:
                        return False
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._progress.wait(0.5 if remaining is None else min(remaining, 0.5))
            return True
        finally:
            self._hurry.clear()

    def close(self, timeout: float | None = 30.0) -> None:
        """Deliver what can be delivered within ``timeout``, then stop. While the store is
        failing it does not wait: what is left stays in the spool, and is delivered by the
        next process that starts on it (the log line says how much)."""
        if self._closed:
            return
        if self._pid == os.getpid():
            self._last_flush(timeout)
            self._stopping.set()
            self._wake.set()
            self._thread.join(timeout=5.0)
        self._release()

    def _last_flush(self, timeout: float | None) -> None:
        if self.flush(timeout, during_outage=False):
            return
        journal = self.spool.current()
        logger.warning(
            "auditwire: closing with %d undelivered byte(s) in the spool %s; the next process "
            "started on it delivers them (%s)",
            journal.pending_bytes() if journal is not None else 0,
            self.spool.directory,
            self._failures.last_error or "no error recorded",
        )

    def _release(self) -> None:
        if self._pid == os.getpid():
            self.spool.close()
            for orphan in self._orphans:
                orphan.close()
        self._closed = True
        atexit.unregister(self.close)
        self.destination.close()

    def stats(self) -> DeliveryStats:
        journal = self.spool.current()
        oldest = self._oldest_pending_ms
        return DeliveryStats(
            accepted=self._accepted,
            delivered=self._delivered,
            retried=self._retried,
            dead_lettered=self._dead_lettered,
            spooled_bytes=journal.pending_bytes() if journal is not None else 0,
            lag_seconds=0.0 if oldest is None else max(0.0, time.time() - oldest / 1000),
            replayed_journals=self._replayed,
            failures=self._failures.count,
            last_error=self._failures.last_error,
            last_delivery=None
            if self._last_delivery is None
            else datetime.fromtimestamp(self._last_delivery, timezone.utc).isoformat(),
        )

    # -- the worker -------------------------------------------------------------------------

    def _worker_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        """The worker thread: runs the delivery plan, doing its waits and sends itself."""
        while not self._stopping.is_set():
            try:
                self._housekeep()
                self._drive(self._step())
            except Exception as exc:  # the worker must outlive any bug; the spool keeps the data
                self._failures.note(f"the delivery worker hit an unexpected error: {exc!r}")
                self._stopping.wait(1.0)

    def _housekeep(self) -> None:
        """Look for journals of dead processes, and log the figures, now and then."""
        now = time.monotonic()
        if now >= self._next_scan:
            self._adopt_orphans()
            self._next_scan = now + RESCAN_EVERY
        if now >= self._next_stats:
            self._logged = self._log_stats(self._logged)
            self._next_stats = now + STATS_EVERY

    def _drive(self, plan: Plan) -> object:
        """Carry out a plan's waits and sends on this thread."""
        answer: object = None
        while True:
            try:
                step = plan.send(answer)
            except StopIteration as done:
                return done.value
            if isinstance(step, Send):
                try:
                    answer = self.destination.send(step.payloads)
                except Exception as exc:
                    answer = exc
            elif isinstance(step, Wait):
                answer = (self._hurry if step.hurry else self._wake).wait(step.seconds)
            else:
                answer = self._stopping.wait(step.seconds)

    def _adopt_orphans(self) -> None:
        # Journals adopted earlier are locked by this process, so they are not found again.
        fresh = self.spool.orphans()
        if fresh:
            logger.info(
                "auditwire: replaying %d spool journal(s) left by stopped processes in %s",
                len(fresh),
                self.spool.directory,
            )
            with self._progress:
                self._orphans.extend(fresh)

    def _step(self) -> Generator[Step, object, None]:
        """Deliver one batch, or wait for records to arrive. A plan: it yields what to wait
        for and what to send, and a driver (a thread, or a task on an event loop) does it."""
        self._wake.clear()
        journal = self._orphans[0] if self._orphans else self.spool.current()
        if journal is None:
            yield Wait(1.0)
            return
        own = not self._orphans
        entries = journal.read(journal.acked, self.batch_size, self.batch_bytes)
        if not entries:
            self._oldest_pending_ms = None
            if not own:
                journal.remove()
                with self._progress:
                    self._orphans.pop(0)
                    self._replayed += 1
                    self._progress.notify_all()
            else:
                journal.sync(if_due=True)
                yield Wait(1.0)
            return
        self._oldest_pending_ms = entries[0].appended_ms
        if own and len(entries) < self.batch_size and not self._hurry.is_set():
            waited = time.time() - entries[0].appended_ms / 1000
            if waited < self.linger:
                yield Wait(self.linger - waited, hurry=True)  # let the batch fill up
                return
        if (yield from self._deliver(entries)):
            journal.ack(entries[-1].end)
            with self._progress:
                self._last_delivery = time.time()
                self._progress.notify_all()
            if self._outage_since is not None:
                logger.warning(
                    "auditwire: delivery to %s resumed after %.1f s",
                    self.destination.spool_name,
                    time.monotonic() - self._outage_since,
                )
                self._outage_since = None

    def _deliver(self, entries: Sequence[Entry]) -> Generator[Step, object, bool]:
        """Deliver or dead-letter every entry; ``False`` if stopped before that."""
        pending = list(entries)
        attempt = 0
        while pending:
            if self._stopping.is_set():
                return False
            answer = yield Send([e.payload for e in pending])
            if isinstance(answer, SendError) and not answer.retryable:
                if len(pending) == 1:
                    self._dead_letter(pending[0].payload, answer.status, str(answer))
                    return True
                half = len(pending) // 2
                if not (yield from self._deliver(pending[:half])):
                    return False
                pending = pending[half:]
                continue
            results = self._results(answer, len(pending))
            retry = []
            delivered = 0
            reason = None
            for entry, result in zip(pending, results, strict=True):
                if result.delivered:
                    delivered += 1
                elif result.worth_retrying:
                    retry.append(entry)
                    reason = reason or f"{result.status}: {result.error}"
                else:
                    self._dead_letter(entry.payload, result.status, result.error)
            with self._lock:
                self._delivered += delivered
                self._retried += len(retry)
            if retry and len(retry) < len(pending):
                self._failures.note(
                    f"{len(retry)} of {len(pending)} record(s) were refused for now "
                    f"({reason}); retrying them"
                )
            pending = retry
            if pending:
                if (yield Sleep(self.backoff.delay(attempt))):
                    return False
                attempt += 1
        return True

    def _results(self, answer: object, count: int) -> Sequence[ItemResult]:
        """The per-entry results of a send; a failed send (the store away, busy, or a bug in
        a client) fails every entry for now, so all are kept and retried."""
        if isinstance(answer, BaseException):
            self._note_outage(f"sending {count} record(s) failed: {answer}")
            status = answer.status if isinstance(answer, SendError) else None
            return [ItemResult(status or 503, str(answer) or repr(answer))] * count
        results = answer if isinstance(answer, Sequence) else ()
        if len(results) != count:
            message = f"the store answered {len(results)} results for {count} entries"
            self._note_outage(message)
            return [ItemResult(503, message)] * count
        return results

    def _note_outage(self, message: str) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
        self._failures.note(f"{message}; records wait in the spool {self.spool.directory}")

    def _dead_letter(self, payload: bytes, status: int | None, reason: str | None) -> None:
        line = {
            "failed_at": datetime.now(timezone.utc).isoformat(),
            "destination": self.destination.spool_name,
            "status": status,
            "reason": reason,
            "entry": payload.decode("utf-8", "replace"),
        }
        self.dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
        fd = os.open(self.dead_letter_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)  # one write per line: lines of several processes never mix
            os.fsync(fd)
        finally:
            os.close(fd)
        with self._lock:
            self._dead_lettered += 1
        self._failures.note(
            f"a record was refused for good (status {status}: {reason}); kept in "
            f"{self.dead_letter_path}"
        )

    def _log_stats(self, previous: DeliveryStats | None) -> DeliveryStats:
        stats = self.stats()
        if previous is None or stats.accepted != previous.accepted or stats.spooled_bytes:
            logger.info(
                "auditwire: delivery stats %s",
                self.destination.spool_name,
                extra={"auditwire_delivery": stats.as_dict()},
            )
        return stats
