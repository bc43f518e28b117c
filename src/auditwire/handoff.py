"""The hand-off between capture and storage.

Middleware and log processors must not wait on a store. On the request path they add the raw
facts of a request to a pending batch (under a lock held for a list append). Records are built
in batches, by whoever fills one:

- under load, the thread that submits the batch's last item builds the batch right there —
  after its own response went out — and hands the finished write to the writer thread. Building
  a run of records back to back keeps the interpreter's caches warm, and no other thread has to
  take the GIL from the request threads to do it: measured under uvicorn, building in a
  background thread cost several times the CPU of building the same records in batches in the
  request's thread, most of it in GIL hand-overs between the two;
- when traffic is light, the writer thread builds what has waited ``linger`` seconds.

Sinks that can (:class:`~auditwire.stores.base.Preparing`, such as the delivery pipeline) also
encode in the building thread; the writer thread only does what waits on a disk or a store.

Pending items are bounded. What happens when ``max_pending`` are waiting is the ``overflow``
policy: ``"spool"`` (the default) has the caller build and write its own records — slower for
that request, but nothing is lost, and with a remote store the write is an append to the local
spool, never a network call; ``"block"`` makes the caller wait for room; ``"drop"`` drops the
item and counts it.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Literal, Protocol

from auditwire._fork import renew_in_child
from auditwire.failures import FailureLog
from auditwire.record import AuditRecord
from auditwire.stores.base import Preparing

if TYPE_CHECKING:
    from auditwire.stores.base import Sink

logger = logging.getLogger("auditwire")
Overflow = Literal["spool", "block", "drop"]
OVERFLOW_POLICIES: tuple[Overflow, ...] = ("spool", "block", "drop")


class Deferred(Protocol):
    """Raw facts that become records when a batch of them is built."""

    def build(self) -> Sequence[AuditRecord]: ...


class _Marker:
    """Put on the queue by :meth:`BackgroundWriter.flush`; set once what was before it is
    written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


@dataclass(slots=True)
class _Ready:
    """A built batch: the write the writer thread performs, and what it accounts for."""

    write: Callable[[], None]
    items: int
    records: int


_STOP = object()
_WAKE = object()  # items are pending: the writer starts its linger


@dataclass(frozen=True, slots=True)
class WriterStats:
    submitted: int
    written: int
    pending: int
    overflowed: int
    dropped: int
    failed: int
    last_error: str | None

    @classmethod
    def empty(cls) -> WriterStats:
        return cls(0, 0, 0, 0, 0, 0, None)


class BackgroundWriter:
    """Builds submitted items into records in batches and writes them from a worker thread."""

    def __init__(
        self,
        sink: Sink,
        *,
        max_pending: int = 10_000,
        batch_size: int = 64,
        linger: float = 0.05,
        overflow: Overflow = "spool",
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
        self._queue: SimpleQueue[object] = SimpleQueue()
        self._items: list[object] = []  # submitted, not yet taken into a batch
        self._items_since = 0.0  # when the first of them was submitted
        self._building: set[int] = set()  # tickets of batches taken and not yet queued
        self._tickets = 0
        self._accepted = 0  # items taken (pending, or written by their caller)
        self._done = 0  # items whose batch was written (or failed)
        self._written = 0
        self._overflowed = 0
        self._dropped = 0
        self._failures = FailureLog()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # batches finished or handed over
        self._thread: threading.Thread | None = None
        self._closed = False
        atexit.register(self.close)
        renew_in_child(self, BackgroundWriter._after_fork)

    def _after_fork(self) -> None:
        """In a forked child: the parent's thread, items and locks stayed behind (the parent
        writes its own items). Done by a fork hook rather than a process-id check on every
        submit, which would be a system call per request."""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue = SimpleQueue()
        self._items = []
        self._building = set()
        self._accepted = self._done = self._overflowed = 0
        self._thread = None

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, item: AuditRecord | Deferred) -> None:
        """Add an item to the pending batch; build the batch here when this item fills it.
        When ``max_pending`` items wait, the overflow policy decides."""
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
                if len(items) < self.batch_size:
                    if len(items) == 1:
                        self._items_since = time.monotonic()
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
            self._build(batch, ticket)
        elif self.overflow == "spool":
            self._write(self._records([item]))
        else:
            with self._changed:
                self._changed.wait_for(lambda: not self._full() or self._closed)
            self.submit(item)

    def _full(self) -> bool:
        return self._accepted - self._overflowed - self._done >= self.max_pending

    def _take(self) -> tuple[list[object], int]:
        """Take the pending items as a batch, with the ticket flushes wait on (lock held)."""
        batch, self._items = self._items, []
        self._tickets += 1
        self._building.add(self._tickets)
        return batch, self._tickets

    def _records(self, items: list[object]) -> list[AuditRecord]:
        """The records of a batch; an item whose building fails is counted and skipped (a bug
        in capture must not lose the rest)."""
        records: list[AuditRecord] = []
        for item in items:
            if isinstance(item, AuditRecord):
                records.append(item)
                continue
            try:
                records.extend(item.build())  # type: ignore[attr-defined]
            except Exception as exc:
                self._failures.note(f"building a record failed: {exc!r}")
        return records

    def _build(self, batch: list[object], ticket: int) -> None:
        """Build a batch (and encode it, for a sink that prepares) and queue its write."""
        try:
            records = self._records(batch)
            write = self._prepare(records)
            self._queue.put(_Ready(write, len(batch), len(records)))
        except Exception as exc:  # never into the caller: its response is already out
            self._failures.note(f"preparing {len(batch)} record(s) failed: {exc!r}")
            with self._lock:
                self._done += len(batch)
        finally:
            with self._changed:
                self._building.discard(ticket)
                self._changed.notify_all()

    def _prepare(self, records: list[AuditRecord]) -> Callable[[], None]:
        sink = self.sink
        if not records:
            return _nothing
        if isinstance(sink, Preparing):
            return sink.prepare(records)
        return lambda: sink.write(records)

    def _write(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        try:
            self.sink.write(records)
        except Exception as exc:
            self._failures.note(f"writing {len(records)} record(s) failed: {exc!r}")
            return
        with self._lock:
            self._written += len(records)

    # -- the writer thread ----------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="auditwire-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        deadline: float | None = None  # when the oldest pending item has waited ``linger``
        while True:
            try:
                timeout = 0.5 if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    message = self._queue.get(timeout=timeout)
                except Empty:
                    message = None
                if message is _STOP:
                    return
                if isinstance(message, _Ready):
                    self._finish(message)
                elif isinstance(message, _Marker):
                    message.done.set()
                if message is _WAKE or (deadline is not None and time.monotonic() >= deadline):
                    deadline = self._build_leftovers()
            except Exception:  # the worker must outlive any bug, or records would pile up
                logger.exception("auditwire: the audit writer hit an unexpected error")

    def _build_leftovers(self) -> float | None:
        """Build what has waited ``linger`` for a batch to fill; else say when it will have."""
        with self._lock:
            if not self._items:
                return None
            due = self._items_since + self.linger
            if time.monotonic() < due:
                return due
            batch, ticket = self._take()
        self._build(batch, ticket)
        return None

    def _finish(self, ready: _Ready) -> None:
        try:
            ready.write()
        except Exception as exc:
            self._failures.note(f"writing {ready.records} record(s) failed: {exc!r}")
        else:
            with self._lock:
                self._written += ready.records
        with self._changed:
            self._done += ready.items
            self._changed.notify_all()

    # -- waiting and closing ----------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted before the call is written; ``False`` on timeout.

        The pending items are built now; batches other threads are building are waited for;
        then a marker goes through the queue behind their writes (the queue is FIFO), so the
        answer is exact whatever other threads submit meanwhile.
        """
        if self._thread is None or not self._thread.is_alive():
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            earlier = set(self._building)
            taken = self._take() if self._items else None
        if taken is not None:
            self._build(*taken)
        with self._changed:
            if not self._changed.wait_for(
                lambda: earlier.isdisjoint(self._building), _left(deadline)
            ):
                return False
        marker = _Marker()
        self._queue.put(marker)
        return marker.done.wait(_left(deadline))

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

    def stats(self) -> WriterStats:
        with self._lock:
            return WriterStats(
                submitted=self._accepted,
                written=self._written,
                pending=max(0, self._accepted - self._overflowed - self._done),
                overflowed=self._overflowed,
                dropped=self._dropped,
                failed=self._failures.count,
                last_error=self._failures.last_error,
            )


def _nothing() -> None:
    pass


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
