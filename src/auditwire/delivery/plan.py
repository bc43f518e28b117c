"""The delivery plan: every decision of delivering a spool, none of the waiting.

:class:`DeliveryPlan` holds a destination, its spool, the batching and retry settings and the
figures, and yields what to do as steps — :class:`SendBatch` these payloads, :class:`Wait` for
records, :class:`Sleep` (back off) — for a driver to carry out: a thread
(:class:`~auditwire.delivery.pipeline.Delivery`) or a task on an event loop
(:class:`~auditwire.delivery.aio.AsyncDelivery`). Both drive the same plan, so they make the
same decisions.

Failures are classified per entry: a connection error, timeout, 429 or 5xx is retried with
capped exponential backoff and jitter, resending only the entries that failed; an entry the
store refuses for good (a mapping error) goes to the dead-letter file with the reason. A whole
request refused for good (413, 400) is split in halves until the offending entry is alone.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypedDict, runtime_checkable

from auditwire.delivery.failures import FailureLog
from auditwire.delivery.spool import Entry, Journal, Spool
from auditwire.errors import SendError, SpoolUnusableError
from auditwire.stores.base import Destination, ItemResult

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from auditwire.record import AuditRecord

__all__ = [
    "RESCAN_EVERY",
    "STATS_EVERY",
    "Backoff",
    "DeliveryPlan",
    "DeliveryStats",
    "Pipeline",
    "Plan",
    "PlanOptions",
    "SendBatch",
    "Sleep",
    "Step",
    "Wait",
]

logger = logging.getLogger("auditwire")

#: Seconds between looks for journals left by dead processes (another worker may die).
RESCAN_EVERY = 30.0
#: Seconds between the structured stats lines logged while something changes.
STATS_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class SendBatch:
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


Step = SendBatch | Wait | Sleep
Plan = Generator[Step, object, object]
"""What the worker does, as steps for a driver."""


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
    damaged: int  # frames lost to damage on disk (each logged with its place)
    failures: int
    last_error: str | None
    last_delivery: str | None  # ISO time of the last delivered batch

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def empty(cls) -> DeliveryStats:
        return cls(0, 0, 0, 0, 0, 0.0, 0, 0, 0, None, None)


#: The jitter's own generator: the application's ``random`` state is not auditwire's to use.
_jitter = random.Random()


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
        return ceiling / 2 + _jitter.uniform(0, ceiling / 2)


class PlanOptions(TypedDict, total=False):
    """How a pipeline delivers, whoever drives it (all optional).

    ``batch_size`` (500) and ``batch_bytes`` (5 MiB) bound a request; a batch is sent once full
    or when its oldest entry has waited ``linger`` seconds (0.05). ``backoff`` spaces retries
    (0.1 s doubling to 30 s). ``dead_letter`` is the file of refused entries (default:
    ``dead-letter.ndjson`` beside the journals).
    """

    batch_size: int
    batch_bytes: int
    linger: float
    backoff: Backoff | None
    dead_letter: str | os.PathLike[str] | None


class DeliveryPlan:
    """The state and decisions of delivering ``spool`` (a :class:`Spool` or its directory) to
    ``destination`` (see the module); the options are :class:`PlanOptions`.

    The flags a driver shares with the plan are thread-safe events: ``hurry`` (a flush waits:
    send what there is now), ``stopping``. ``wake`` is the driver's: called (from any thread)
    when records arrive or a flush hurries.
    """

    def __init__(
        self,
        destination: Destination,
        spool: Spool | str | os.PathLike[str],
        *,
        wake: Callable[[bool], None],
        **options: Unpack[PlanOptions],
    ) -> None:
        self.options = options
        batch_size = options.get("batch_size", 500)
        batch_bytes = options.get("batch_bytes", 5 * 1024**2)
        if batch_size < 1 or batch_bytes < 1:
            raise ValueError("batch_size and batch_bytes must be positive")
        self.destination = destination
        self.spool = spool if isinstance(spool, Spool) else Spool(spool)
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.linger = options.get("linger", 0.05)
        self.backoff = options.get("backoff") or Backoff()
        dead_letter = options.get("dead_letter")
        self.dead_letter_path = (
            Path(dead_letter)
            if dead_letter is not None
            else self.spool.directory / "dead-letter.ndjson"
        )
        self.wake = wake
        self.failures = FailureLog()
        self.hurry = threading.Event()
        self.stopping = threading.Event()
        self.progress = threading.Condition()
        self.orphans: list[Journal] = []
        self.outage_since: float | None = None
        self._accepted = 0
        self._delivered = 0
        self._retried = 0
        self._dead_lettered = 0
        self._replayed = 0
        self._oldest_pending_ms: int | None = None
        self._last_delivery: float | None = None
        self._lock = threading.Lock()
        self._next_scan = time.monotonic() + RESCAN_EVERY
        self._next_stats = time.monotonic() + STATS_EVERY
        self._logged: DeliveryStats | None = None

    def renewed(self, wake: Callable[[bool], None]) -> DeliveryPlan:
        """A fresh plan on the same destination, spool and options: a forked child's (the
        parent's worker, orphans and figures stayed with the parent)."""
        return DeliveryPlan(self.destination, self.spool, wake=wake, **self.options)

    # -- what callers do --------------------------------------------------------------------

    def accept(self, records: Sequence[AuditRecord]) -> None:
        """Encode records and append them to the spool (all or none); wake the driver. A
        spool that cannot be written raises :class:`SpoolUnusableError`, counted here."""
        if not records:
            return
        payloads = [self.destination.encode(record) for record in records]
        try:
            self.spool.append(payloads)
        except SpoolUnusableError as exc:
            self.failures.note(str(exc))
            raise
        with self._lock:
            self._accepted += len(payloads)
        self.wake(False)

    def wait_delivered(
        self, timeout: float | None, *, during_outage: bool, alive: Callable[[], bool]
    ) -> bool:
        """Wait until everything appended before the call is delivered (or dead-lettered),
        and any spool left by a dead process too; ``False`` on timeout or when the driver is
        not ``alive``. ``during_outage=False`` gives up at once while the store is failing
        (the records are safe in the spool either way). While the spool cannot be used the
        answer is ``False`` at once."""
        if self.spool.unusable is not None:
            return False
        journal = self.spool.current()
        target = journal.end if journal is not None else None
        deadline = None if timeout is None else time.monotonic() + timeout
        self.hurry.set()
        self.wake(True)
        try:
            with self.progress:
                while self.orphans or (journal and target and journal.acked < target):
                    if not alive():
                        return False
                    if not during_outage and self.outage_since is not None:
                        return False
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self.progress.wait(0.5 if remaining is None else min(remaining, 0.5))
            return True
        finally:
            self.hurry.clear()

    def last_flush(self, timeout: float | None, alive: Callable[[], bool]) -> None:
        """Before closing: deliver what can be within ``timeout``, not waiting while the store
        fails; what is left stays in the spool, and a warning says how much."""
        if self.wait_delivered(timeout, during_outage=False, alive=alive):
            return
        journal = self.spool.current()
        logger.warning(
            "auditwire: closing with %d undelivered byte(s) in the spool %s; the next process "
            "started on it delivers them (%s)",
            journal.pending_bytes() if journal is not None else 0,
            self.spool.directory,
            self.failures.last_error or "no error recorded",
        )

    def release(self, *, owner: bool) -> None:
        """Let go of the spool (``owner``: this process wrote it) and the destination."""
        if owner:
            self.spool.close()
            for orphan in self.orphans:
                orphan.close()
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
            damaged=self.spool.damaged,
            failures=self.failures.count,
            last_error=self.failures.last_error,
            last_delivery=None
            if self._last_delivery is None
            else datetime.fromtimestamp(self._last_delivery, timezone.utc).isoformat(),
        )

    # -- what drivers run -------------------------------------------------------------------

    def housekeep(self) -> None:
        """Look for journals of dead processes, and log the figures, now and then."""
        now = time.monotonic()
        if now >= self._next_scan:
            self.adopt_orphans()
            self._next_scan = now + RESCAN_EVERY
        if now >= self._next_stats:
            self._logged = self._log_stats(self._logged)
            self._next_stats = now + STATS_EVERY

    def adopt_orphans(self) -> None:
        """Take over the journals of stopped processes (journals adopted earlier are locked by
        this process, so they are not found again). A spool that cannot be read is reported,
        not raised: the application starts, and ``flush()`` and ``stats()`` say so."""
        try:
            fresh = self.spool.orphans()
        except SpoolUnusableError as exc:
            logger.error("auditwire: %s", exc)
            self.failures.note(str(exc))
            return
        if fresh:
            logger.info(
                "auditwire: replaying %d spool journal(s) left by stopped processes in %s",
                len(fresh),
                self.spool.directory,
            )
            with self.progress:
                self.orphans.extend(fresh)

    def step(self) -> Generator[Step, object, None]:
        """Deliver one batch, or wait for records to arrive."""
        journal = self.orphans[0] if self.orphans else self.spool.current()
        if journal is None:
            yield Wait(1.0)
            return
        own = not self.orphans
        entries = journal.read(journal.acked, self.batch_size, self.batch_bytes)
        if not entries:
            self._oldest_pending_ms = None
            if not own:
                journal.remove()
                with self.progress:
                    self.orphans.pop(0)
                    self._replayed += 1
                    self.progress.notify_all()
            else:
                journal.sync(if_due=True)
                yield Wait(1.0)
            return
        self._oldest_pending_ms = entries[0].appended_ms
        if own and len(entries) < self.batch_size and not self.hurry.is_set():
            waited = time.time() - entries[0].appended_ms / 1000
            if waited < self.linger:
                yield Wait(self.linger - waited, hurry=True)  # let the batch fill up
                return
        if (yield from self._deliver(entries)):
            journal.ack(entries[-1].end)
            with self.progress:
                self._last_delivery = time.time()
                self.progress.notify_all()
            if self.outage_since is not None:
                logger.warning(
                    "auditwire: delivery to %s resumed after %.1f s",
                    self.destination.spool_name,
                    time.monotonic() - self.outage_since,
                )
                self.outage_since = None

    def _deliver(self, entries: Sequence[Entry]) -> Generator[Step, object, bool]:
        """Deliver or dead-letter every entry; ``False`` if stopped before that."""
        pending = list(entries)
        attempt = 0
        while pending:
            if self.stopping.is_set():
                return False
            answer = yield SendBatch([e.payload for e in pending])
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
                self.failures.note(
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
            # Kept whatever the status: a request that failed as a whole (say, the template
            # check answered 400) says nothing against any one record.
            return [ItemResult(status or 503, str(answer) or repr(answer), retryable=True)] * count
        results = answer if isinstance(answer, Sequence) else ()
        if len(results) != count:
            message = f"the store answered {len(results)} results for {count} entries"
            self._note_outage(message)
            return [ItemResult(503, message)] * count
        return results

    def _note_outage(self, message: str) -> None:
        if self.outage_since is None:
            self.outage_since = time.monotonic()
        self.failures.note(f"{message}; records wait in the spool {self.spool.directory}")

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
        self.failures.note(
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


@runtime_checkable
class Pipeline(Protocol):
    """A sink that delivers through a :class:`DeliveryPlan`, whoever drives it: a
    :class:`~auditwire.delivery.pipeline.Delivery` (a thread) or an
    :class:`~auditwire.delivery.aio.AsyncDelivery` (a task)."""

    plan: DeliveryPlan

    def write(self, records: Sequence[AuditRecord]) -> None: ...

    def flush(self, timeout: float | None = None, *, during_outage: bool = True) -> bool: ...

    def stats(self) -> DeliveryStats: ...

    def close(self) -> None: ...
