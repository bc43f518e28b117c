"""The hand-off between capture and storage.

Middleware and log processors must not wait on a store. On the request path they add the raw
facts of a request to a pending batch (a list append under a lock). Records are built and
written in batches, by whoever completes one:

- under load, the thread that submits a batch's last item (or an item arriving when the
  batch's first has waited ``linger``) builds and writes the batch right there — after its
  own response went out. For a remote store the write is an append to the local spool, never
  a network call;
- when traffic stops, the writer thread builds and writes what has waited ``linger``.

Why the request's thread and not a background one, measured under uvicorn: a Python thread
that wants the GIL while the event loop makes system calls is woken by every one of them and
loses the race for it again and again; one such wake-up of the writer cost milliseconds of
CPU, and a writer that built or wrote every batch cost more than the records themselves.
Building a run of records back to back in the thread that already holds the GIL also keeps
the interpreter's caches warm. So under load the writer thread stays asleep (it looks every
``busy_poll`` seconds whether traffic stopped); when the application is quiet it sleeps until
the next item.

Pending items are bounded: the items of the open batch and of batches being built and
written. ``max_pending`` is reached only when many threads are stuck writing to a slow store;
then the ``overflow`` policy decides: ``"spool"`` (the default) has the caller build and write
its own record at once, ``"block"`` makes the caller wait for room, ``"drop"`` drops the item
and counts it.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Literal

from auditwire._fork import renew_in_child
from auditwire.delivery.failures import FailureLog
from auditwire.record import AuditRecord
from auditwire.stores.base import Sink

__all__ = ["BUSY_POLL", "OVERFLOW_POLICIES", "Deferred", "HandOff", "HandOffStats", "Overflow"]

logger = logging.getLogger("auditwire")
Overflow = Literal["spool", "block", "drop"]
OVERFLOW_POLICIES: tuple[Overflow, ...] = ("spool", "block", "drop")
#: How often the writer looks for a stopped burst's leftovers while callers are busy writing.
BUSY_POLL = 2.0

_STOP = object()
_WAKE = object()  # the first item after a quiet spell: the writer stops sleeping


#: Raw facts that become records when a batch of them is built (called then).
Deferred = Callable[[], Sequence[AuditRecord]]


@dataclass(frozen=True, slots=True)
class HandOffStats:
    submitted: int
    written: int
    pending: int
    overflowed: int
    dropped: int
    failed: int
    last_error: str | None

    @classmethod
    def empty(cls) -> HandOffStats:
        return cls(0, 0, 0, 0, 0, 0, None)


class HandOff:
    """Builds submitted items into records and writes them, in batches (see the module)."""

    def __init__(
        self,
        sink: Sink,
        *,
        max_pending: int = 10_000,
        batch_size: int = 64,
        linger: float = 0.05,
        overflow: Overflow = "spool",
        busy_poll: float = BUSY_POLL,
    ) -> None:
        if max_pending < 1 or batch_size < 1:
            raise ValueError("max_pending and batch_size must be positive")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(
                f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, not {overflow!r}"
            )
        self.overflow: Overflow = overflow
        self.sink = sink
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.linger = linger
        self.busy_poll = busy_poll
        self._queue: SimpleQueue[object] = SimpleQueue()  # wakes the writer
        self._sleeping = True  # the writer waits for a wake-up, not a timeout
        self._items: list[object] = []  # submitted, not yet taken into a batch
        self._items_since = 0.0  # when the first of them was submitted
        self._building: set[int] = set()  # tickets of batches taken and not yet written
        self._tickets = 0
        self._accepted = 0  # items taken (pending, or written by their caller on overflow)
        self._done = 0  # items whose batch was written (or failed)
        self._written = 0
        self._overflowed = 0
        self._dropped = 0
        self._failures = FailureLog()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # batches finished
        self._thread: threading.Thread | None = None
        self._closed = False
        atexit.register(self.close)
        renew_in_child(self, HandOff._after_fork)

    def _after_fork(self) -> None:
        """In a forked child: the parent's thread, items and locks stayed behind (the parent
        writes its own items). Done by a fork hook rather than a process-id check on every
        submit, which would be a system call per request."""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue = SimpleQueue()
        self._sleeping = True
        self._items = []
        self._building = set()
        self._accepted = self._done = self._overflowed = 0
        self._thread = None

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, item: AuditRecord | Deferred) -> None:
        """Add an item to the open batch; build and write the batch here when this item
        completes it. When ``max_pending`` items are pending, the overflow policy decides."""
        if self._closed:
            raise RuntimeError("the audit writer is closed")
        if self._thread is None:
            self._start()
        with self._lock:
            full = self._full()
            if not full:
                self._accepted += 1
                items = self._items
                items.append(item)
                now = time.monotonic()
                if len(items) == 1:
                    self._items_since = now
                if len(items) < self.batch_size and (
                    len(items) == 1 or now - self._items_since < self.linger
                ):
                    if self._sleeping:  # someone must build these if no more come
                        self._sleeping = False
                        self._queue.put(_WAKE)
                    return
                batch, ticket = self._take()
            elif self.overflow != "block":
                self._accepted += 1
                self._overflowed += 1  # not pending: written here, or dropped
                if self.overflow == "drop":
                    self._dropped += 1
                    return
        if not full:
            self._process(batch, ticket)
        elif self.overflow == "spool":
            self._write(*self._records([item]))
        else:
            with self._changed:
                self._changed.wait_for(lambda: not self._full() or self._closed)
            self.submit(item)

    def _full(self) -> bool:
        return self._accepted - self._overflowed - self._done >= self.max_pending

    def _take(self) -> tuple[list[object], int]:
        """Take the open batch, with the ticket flushes wait on (lock held)."""
        batch, self._items = self._items, []
        self._tickets += 1
        self._building.add(self._tickets)
        return batch, self._tickets

    def _records(self, items: list[object]) -> tuple[list[AuditRecord], bool]:
        """The records of a batch, and whether all were built here (nobody else holds them);
        an item whose building fails is counted and skipped (a bug in capture must not lose
        the rest)."""
        records: list[AuditRecord] = []
        fresh = True
        for item in items:
            if isinstance(item, AuditRecord):
                records.append(item)
                fresh = False
                continue
            try:
                records.extend(item())  # type: ignore[operator]
            except Exception as exc:
                self._failures.note(f"building a record failed: {exc!r}")
        return records, fresh

    def _process(self, batch: list[object], ticket: int) -> None:
        """Build and write a batch; never raises (the caller's response is already out)."""
        try:
            self._write(*self._records(batch))
        finally:
            with self._changed:
                self._building.discard(ticket)
                self._done += len(batch)
                self._changed.notify_all()

    def _write(self, records: Sequence[AuditRecord], fresh: bool = False) -> None:
        """Write records; ones built here go to the sink's ``write_fresh`` when it has one
        (a :class:`~auditwire.integrity.Sealer` then seals them without copying them)."""
        if not records:
            return
        write = getattr(self.sink, "write_fresh", None) if fresh else None
        try:
            (write or self.sink.write)(records)
        except Exception as exc:
            self._failures.note(f"writing {len(records)} record(s) failed: {exc!r}")
            return
        with self._lock:
            self._written += len(records)

    def note_failure(self, message: str) -> None:
        """Count and log (sparingly) a record that could not be made — a log call's, say —
        among the capture failures of :meth:`stats`."""
        self._failures.note(message)

    # -- the writer thread ----------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="auditwire-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        timeout: float | None = None
        tickets = self._tickets
        while True:
            try:
                try:
                    message = self._queue.get(timeout=timeout)
                except Empty:
                    message = None
                if message is _STOP:
                    return
                with self._lock:
                    now = time.monotonic()
                    busy = self._tickets != tickets  # callers completed batches meanwhile
                    due = self._items_since + self.linger
                    taken = self._take() if self._items and now >= due else None
                    tickets = self._tickets
                    if not self._items:
                        self._sleeping = True  # until the next item wakes it
                        timeout = None
                    else:
                        timeout = self.busy_poll if busy else max(0.0, due - now)
                if taken is not None:
                    self._process(*taken)
            except Exception:  # the worker must outlive any bug, or records would pile up
                logger.exception("auditwire: the audit writer hit an unexpected error")

    # -- waiting and closing ----------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted before the call is written; ``False`` on timeout.

        The open batch is built and written here; batches other threads took before are
        waited for — so the answer is exact whatever other threads submit meanwhile.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            earlier = set(self._building)
            taken = self._take() if self._items else None
        if taken is not None:
            self._process(*taken)
        with self._changed:
            return self._changed.wait_for(
                lambda: earlier.isdisjoint(self._building), _left(deadline)
            )

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, then stop the worker. Safe to call twice."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        with self._changed:
            self._changed.notify_all()
        self._queue.put(_STOP)
        atexit.unregister(self.close)
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def stats(self) -> HandOffStats:
        with self._lock:
            return HandOffStats(
                submitted=self._accepted,
                written=self._written,
                pending=max(0, self._accepted - self._overflowed - self._done),
                overflowed=self._overflowed,
                dropped=self._dropped,
                failed=self._failures.count,
                last_error=self._failures.last_error,
            )


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
