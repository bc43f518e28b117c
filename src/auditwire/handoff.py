"""The hand-off between capture and storage.

Middleware and log processors must not wait on a store, and should not even pay for building
the record: on the request path they put the raw facts of a request on a queue (a C-level
``SimpleQueue`` put, well under a microsecond) and a worker thread builds, validates and writes
the records in batches.

The queue is bounded by a count of pending items. What happens when it is full is the
``overflow`` policy: ``"spool"`` (the default) has the caller build and write its own records —
slower for that request, but nothing is lost, and with a remote store the write is an append
to the local spool, never a network call; ``"block"`` makes the caller wait for room;
``"drop"`` drops the item and counts it.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Literal, Protocol

from auditwire._fork import renew_in_child
from auditwire.failures import FailureLog

if TYPE_CHECKING:
    from auditwire.record import AuditRecord
    from auditwire.stores.base import Sink

logger = logging.getLogger("auditwire")
_STOP = object()
#: The longest the writer holds the GIL while building records (seconds).
YIELD_EVERY = 0.0005
Overflow = Literal["spool", "block", "drop"]
OVERFLOW_POLICIES: tuple[Overflow, ...] = ("spool", "block", "drop")


class _Marker:
    """Put on the queue by :meth:`BackgroundWriter.flush`; set once what was before it is
    written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class Deferred(Protocol):
    """Raw facts that become records when the worker gets to them."""

    def build(self) -> Sequence[AuditRecord]: ...


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
    """A worker thread that turns submitted items into records and writes them in batches."""

    def __init__(
        self,
        sink: Sink,
        *,
        max_pending: int = 10_000,
        batch_size: int = 500,
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
        self._accepted = itertools.count()  # items taken (queued or written by their caller)
        self._done = 0  # items the worker finished
        self._written = 0
        self._overflowed = 0
        self._dropped = 0
        self._failures = FailureLog()
        self._room = threading.Condition()  # notified as batches finish, for overflow="block"
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        self._hurry = threading.Event()  # set by flush/close: skip the linger
        atexit.register(self.close)
        renew_in_child(self, BackgroundWriter._renew_locks)

    def _renew_locks(self) -> None:
        self._lock = threading.Lock()
        self._room = threading.Condition()

    def submit(self, item: AuditRecord | Deferred) -> None:
        """Queue an item; when the queue is full, write it here and now instead.

        No lock on this path: ``next()`` on a counter and ``SimpleQueue.put`` are atomic, and
        the bound is a soft one (it may be passed by the number of concurrent callers).
        """
        if self._closed:
            raise RuntimeError("the audit writer is closed")
        if self._pid != os.getpid() or self._thread is None:
            self._start()
        if self._pending(next(self._accepted)) >= self.max_pending:
            self._overflowed += 1
            if self.overflow == "spool":
                self._write(_records(item))
                return
            if self.overflow == "drop":
                self._dropped += 1
                return
            with self._room:
                self._room.wait_for(lambda: self._pending() < self.max_pending or self._closed)
            self._overflowed -= 1  # it waited for room and goes on the queue after all
        self._queue.put(item)

    def _pending(self, taken: int | None = None) -> int:
        """Items taken (``taken``: the count so far) and neither written by their callers nor
        finished by the worker."""
        if taken is None:
            taken = _peek(self._accepted)
        return taken - self._overflowed - self._done

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            if self._pid != os.getpid():  # forked: the parent's thread and queue stayed behind
                self._queue = SimpleQueue()
                self._accepted = itertools.count()
                self._done = 0
                self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="auditwire-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                items = self._next_batch()
                if items is None:
                    return
                self._process(items)
            except Exception:  # the worker must outlive any bug, or records would pile up
                logger.exception("auditwire: the audit writer hit an unexpected error")

    def _next_batch(self) -> list[object] | None:
        """The next batch, ``None`` once stopped. After the first item it lets a batch gather
        while waiting (which releases the GIL), then takes it in one go: one wake-up per batch
        instead of one GIL hand-over per record, which keeps the writer from slowing the
        request threads it serves."""
        while True:
            try:
                first = self._queue.get(timeout=0.5)
                break
            except Empty:
                if self._closed:
                    return None
        if first is _STOP:
            return None
        items = [first]
        if self.linger > 0 and not self._hurry.is_set():
            self._hurry.wait(self.linger)
        while len(items) < self.batch_size:
            try:
                item = self._queue.get_nowait()
            except Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # stop once this batch is written
                break
            items.append(item)
        return items

    def _process(self, items: list[object]) -> None:
        markers = [item for item in items if type(item) is _Marker]
        try:
            records: list[AuditRecord] = []
            yielded = time.perf_counter()
            for item in items:
                if type(item) is _Marker:
                    continue
                try:
                    records.extend(_records(item))
                except Exception as exc:  # a bug in capture must not stop the batch
                    self._failures.note(f"building a record failed: {exc!r}")
                # Building is CPU work under the GIL: hand the GIL over every YIELD_EVERY
                # seconds, so a request waits at most that long for the writer rather than a
                # whole switch interval (5 ms).
                if time.perf_counter() - yielded > YIELD_EVERY:
                    time.sleep(0)
                    yielded = time.perf_counter()
            self._write(records)
        finally:
            with self._lock:
                self._done += len(items) - len(markers)
            with self._room:
                self._room.notify_all()
            for marker in markers:
                marker.done.set()

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

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted before the call is written; ``False`` on timeout.

        A marker goes through the queue behind those items (the queue is FIFO), so the answer
        is exact whatever other threads submit meanwhile.
        """
        if self._thread is None or not self._thread.is_alive():
            return True
        marker = _Marker()
        self._hurry.set()
        self._queue.put(marker)
        try:
            return marker.done.wait(timeout)
        finally:
            self._hurry.clear()

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, then stop the worker. Safe to call twice."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        with self._room:
            self._room.notify_all()
        self._queue.put(_STOP)  # wake the worker now rather than at its next poll
        atexit.unregister(self.close)
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def stats(self) -> WriterStats:
        accepted = _peek(self._accepted)
        return WriterStats(
            submitted=accepted,
            written=self._written,
            pending=max(0, self._pending(accepted)),
            overflowed=self._overflowed,
            dropped=self._dropped,
            failed=self._failures.count,
            last_error=self._failures.last_error,
        )


def _peek(counter: itertools.count[int]) -> int:
    """The next value of a counter without consuming it (``count``'s repr is ``count(n)``)."""
    return int(repr(counter)[6:-1])


def _records(item: object) -> Sequence[AuditRecord]:
    from auditwire.record import AuditRecord

    if isinstance(item, AuditRecord):
        return (item,)
    build: Callable[[], Sequence[AuditRecord]] = item.build  # type: ignore[attr-defined]
    return build()
