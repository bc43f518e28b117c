"""The sealing sink: every record a log writes enters this process's hash chain first.

:class:`Sealer` stands between a log and its sink. It seals each batch (:mod:`auditwire.seal`)
and writes it under one lock, so sequence numbers follow the order of writing and a batch the
sink refuses is taken back off the chain instead of leaving a gap. It runs wherever records are
written — in the hand-off, after the response — never in front of a response.

With a keyring it also writes checkpoints (:mod:`auditwire.integrity.checkpoint`): before a
writer's first record (``start``, or ``fork`` in a forked child, naming where its parent's
chain stood), every ``interval`` seconds from a timer thread whether or not anything was
written, and at :meth:`close`. Each checkpoint is also appended, as one JSON line, to a copy
kept elsewhere (a file, or stdout for a log shipper): only such a copy exposes a deleted tail
or a database rolled back, since whoever can do that to the store can delete checkpoints
there too.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditwire._fork import renew_in_child
from auditwire._time import utcnow
from auditwire.canonical import canonical_json
from auditwire.integrity.checkpoint import Kind, checkpoint_record
from auditwire.integrity.keys import Keyring
from auditwire.record import AuditRecord
from auditwire.seal import Chain, ChainState, default_origin
from auditwire.stores.base import Sink

__all__ = ["DEFAULT_INTERVAL", "Integrity", "Sealer"]

logger = logging.getLogger("auditwire")
#: Seconds between checkpoints (journald seals every 15 minutes by default).
DEFAULT_INTERVAL = 900.0


@dataclass(frozen=True)
class Integrity:
    """How a log seals its records. ``origin`` names the log (``$AUDITWIRE_ORIGIN``, else
    ``auditwire``); ``keyring`` signs checkpoints (``$AUDITWIRE_INTEGRITY_KEYRING`` or
    ``$AUDITWIRE_INTEGRITY_KEY``; none: records are chained, but no checkpoint vouches for
    them); ``interval`` is the promised time between checkpoints; ``copy`` is where each
    checkpoint is also appended (a file path, ``"-"`` for stdout;
    ``$AUDITWIRE_CHECKPOINT_COPY``)."""

    origin: str = field(default_factory=default_origin)
    keyring: Keyring | None = field(default_factory=Keyring.from_env)
    interval: float = DEFAULT_INTERVAL
    copy: str | os.PathLike[str] | None = field(
        default_factory=lambda: os.environ.get("AUDITWIRE_CHECKPOINT_COPY") or None
    )

    def __post_init__(self) -> None:
        if not self.interval > 0:
            raise ValueError("the checkpoint interval must be a positive number of seconds")


def append_copy(destination: str | os.PathLike[str], record: AuditRecord) -> None:
    """Append a checkpoint's API form as one JSON line: opened for each line in append mode,
    so rotation, several processes and forks all work without coordination."""
    line = canonical_json(record.to_api()) + b"\n"
    if str(destination) == "-":
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
        return
    with Path(destination).open("ab") as copy:
        copy.write(line)
        copy.flush()
        os.fsync(copy.fileno())


class Sealer:
    """A sink that seals records into this process's chain before ``sink`` stores them."""

    def __init__(self, sink: Sink, integrity: Integrity | None = None) -> None:
        self.sink = sink
        self.integrity = integrity if integrity is not None else Integrity()
        self.chain = Chain(self.integrity.origin)
        self._lock = threading.Lock()
        self._begun = False  # the chain's first record (a checkpoint, with a key) is written
        self._parent: ChainState | None = None  # where the parent stood, in a forked child
        self._last_checkpoint: int | None = None
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self._closed = False
        atexit.register(self.close)
        renew_in_child(self, Sealer._after_fork)

    def __repr__(self) -> str:
        return f"Sealer({self.sink!r}, writer={self.chain.writer!r})"

    def _after_fork(self) -> None:
        """A forked child is a writer of its own: a new name, a new chain and, with a key, a
        ``fork`` checkpoint naming where the parent's chain stood before its first record."""
        self._lock = threading.Lock()
        self._parent = self.chain.renew()
        self._begun = False
        self._last_checkpoint = None
        self._stop = threading.Event()
        self._timer = None

    # -- writing ------------------------------------------------------------------------------

    def write(self, records: Sequence[AuditRecord]) -> None:
        self.seal_and_write(records)

    def write_fresh(self, records: Sequence[AuditRecord]) -> None:
        """:meth:`write` for records nobody else holds yet (the hand-off's own builds): they
        are sealed in place rather than copied."""
        self.seal_and_write(records, in_place=True)

    def seal_and_write(
        self, records: Sequence[AuditRecord], *, in_place: bool = False
    ) -> list[AuditRecord]:
        """Seal ``records``, write them, and return the sealed records (copies, unless
        ``in_place``: see :meth:`~auditwire.seal.Chain.seal`)."""
        if self._closed:
            raise RuntimeError("the audit log is closed")
        with self._lock:
            if not self._begun:
                self._begin()
            return self._write([*records], in_place=in_place)

    def _begin(self) -> None:
        """Start the chain (lock held): nothing to do without a key; with one, the first
        checkpoint, and the timer for the next."""
        self._begun = True
        if self.integrity.keyring is None:
            return
        parent = self._parent if self._parent is not None and self._parent.seq else None
        try:
            self._checkpoint("fork" if parent is not None else "start", parent=parent)
        except BaseException:
            self._begun = False
            raise
        self._timer = threading.Thread(target=self._tick, name="auditwire-checkpoints", daemon=True)
        self._timer.start()

    def _write(self, records: list[AuditRecord], *, in_place: bool = False) -> list[AuditRecord]:
        before = self.chain.state
        sealed = self.chain.seal(records, in_place=in_place)
        try:
            self.sink.write(sealed)
        except BaseException:
            self.chain.rewind(before)  # not stored: the next record takes these numbers
            raise
        return sealed

    def _checkpoint(
        self,
        kind: Kind,
        *,
        parent: ChainState | None = None,
        pruned: list[dict[str, Any]] | None = None,
    ) -> AuditRecord | None:
        """Write a checkpoint (lock held) and append it to the copy; ``None`` when no key is
        valid now (logged: the chain goes on, unvouched for). Only a prune is written
        without a keyring, unsigned."""
        keyring = self.integrity.keyring
        now = utcnow()
        key = None if keyring is None else keyring.signing_key(now)
        if key is None and keyring is not None:
            logger.error("auditwire: no integrity key is valid at %s; checkpoint skipped", now)
            return None
        record = checkpoint_record(
            kind,
            self.chain.origin,
            self.chain.state,
            key,
            time=now,
            interval=self.integrity.interval,
            previous=self._last_checkpoint,
            parent=parent,
            pruned=pruned,
        )
        (sealed,) = self._write([record])
        assert sealed.integrity is not None
        self._last_checkpoint = sealed.integrity.seq
        if self.integrity.copy is not None:
            try:
                append_copy(self.integrity.copy, sealed)
            except OSError as exc:
                logger.error("auditwire: the checkpoint copy could not be written: %s", exc)
        return sealed

    def checkpoint(self, kind: Kind = "interval") -> AuditRecord | None:
        """Write a checkpoint now (what the timer does every interval)."""
        with self._lock:
            if self.integrity.keyring is None or self._closed:
                return None
            if not self._begun:
                self._begin()
                return None
            return self._checkpoint(kind)

    def declare_pruned(self, ranges: list[dict[str, Any]]) -> AuditRecord | None:
        """Write a prune checkpoint declaring the holes retention is about to make
        (:mod:`auditwire.integrity.prune`), signed when there is a keyring."""
        if self._closed:
            raise RuntimeError("the audit log is closed")
        with self._lock:
            if not self._begun:
                self._begin()
            return self._checkpoint("prune", pruned=ranges)

    def _tick(self) -> None:
        stop = self._stop
        while not stop.wait(self.integrity.interval):
            try:
                self.checkpoint("interval")
            except Exception:  # the timer must outlive a store's bad moment
                logger.exception("auditwire: an interval checkpoint could not be written")

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Write the closing checkpoint and stop the timer (the sink is its owner's to close).
        Safe to call twice."""
        if self._closed:
            return
        with self._lock:
            if self._begun and self.integrity.keyring is not None:
                try:
                    self._checkpoint("close")
                except Exception:
                    logger.exception("auditwire: the closing checkpoint could not be written")
            self._closed = True
        self._stop.set()
        atexit.unregister(self.close)
