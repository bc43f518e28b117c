"""The spool: records on local disk until a remote store has them.

Every record the delivery pipeline accepts is appended here first, so what ``record()``
accepted survives the process being killed, a cluster that is away for hours, and a restart.
Each process appends to a journal of its own (a directory), so gunicorn workers never contend
for a file; a journal left behind by a dead process is adopted by the next one that starts and
replayed in order.

A journal directory holds:

- ``lock`` — ``flock``-ed by the owner for as long as it lives; a lock that can be taken marks
  an orphan.
- ``acked`` — the position up to which entries are delivered (segment number, offset). It is
  written after each delivered batch without fsync: losing it only re-sends a batch, which the
  store refuses as a duplicate.
- ``00000001.seg``, ``00000002.seg``… — frames of ``<u32 length><u32 crc32><u64 appended at,
  ms>`` followed by the payload. The CRC covers time and payload, so a torn tail (a write cut by
  a crash) is recognised and dropped rather than replayed as garbage.

Segments wholly delivered are deleted; the total undelivered size is capped, and an append that
would pass the cap is refused whole with :class:`SpoolFullError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from auditwire._fork import renew_in_child
from auditwire._ids import new_id
from auditwire.errors import SpoolFullError

__all__ = [
    "FSYNC_POLICIES",
    "SPOOL_ENV",
    "Entry",
    "FsyncPolicy",
    "Journal",
    "Position",
    "Spool",
    "SpoolFullError",
    "default_root",
]

logger = logging.getLogger("auditwire")

#: Environment variable naming the spool directory when none is passed.
SPOOL_ENV = "AUDITWIRE_SPOOL"
FsyncPolicy = Literal["always", "interval", "never"]
FSYNC_POLICIES: tuple[FsyncPolicy, ...] = ("always", "interval", "never")
_FRAME = struct.Struct("<IIQ")
_ACKED = struct.Struct("<QQ")
_SUFFIX = ".seg"
#: A frame longer than this is corruption, not a record (records are capped far below it).
MAX_PAYLOAD = 64 * 1024 * 1024


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A place in a journal: segment number and byte offset in it."""

    segment: int
    offset: int


@dataclass(frozen=True, slots=True)
class Entry:
    payload: bytes
    appended_ms: int
    end: Position  # the position just after this entry


def default_root() -> Path:
    """``$AUDITWIRE_SPOOL``, else ``$XDG_STATE_HOME/auditwire/spool`` (``~/.local/state/...``).
    Containers should point it at a volume that outlives the container."""
    if os.environ.get(SPOOL_ENV):
        return Path(os.environ[SPOOL_ENV])
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "auditwire" / "spool"


def _segment_name(number: int) -> str:
    return f"{number:08d}{_SUFFIX}"


def _frame(payload: bytes, now_ms: int) -> bytes:
    stamp = now_ms.to_bytes(8, "little")
    crc = zlib.crc32(payload, zlib.crc32(stamp))
    return _FRAME.pack(len(payload), crc, now_ms) + payload


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """One process's append-only log of payloads, or an orphan being replayed.

    Appends come from any thread (under a lock); one reader (the delivery worker) reads from
    its position and acknowledges. The reader never reads past what an append has finished, so
    it cannot see half a frame of its own process.
    """

    def __init__(
        self,
        directory: Path,
        lock_fd: int,
        *,
        segment_bytes: int,
        max_bytes: int,
        fsync: FsyncPolicy,
        fsync_interval: float,
    ) -> None:
        self.directory = directory
        self._lock_fd = lock_fd
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self._lock = threading.Lock()
        self._acked_fd = os.open(directory / "acked", os.O_RDWR | os.O_CREAT, 0o600)
        self.acked = self._read_acked()
        #: Sizes of the segments still holding undelivered data, oldest first.
        self._sizes = {n: self._size(n) for n in self._recover()}
        self._total = sum(self._sizes.values())
        last = max(self._sizes, default=max(self.acked.segment, 1))
        self._end = Position(last, self._sizes.get(last, 0))
        self._append_fd: int | None = None
        self._last_sync = time.monotonic()
        self._unsynced = False

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, **options: object) -> Journal:
        """A new journal for this process under ``root``; names sort by creation time."""
        root.mkdir(parents=True, exist_ok=True)
        directory = root / f"{new_id()[4:]}-{os.getpid()}"
        directory.mkdir(mode=0o700)
        lock_fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return cls(directory, lock_fd, **options)  # type: ignore[arg-type]

    @classmethod
    def adopt(cls, directory: Path, **options: object) -> Journal | None:
        """The journal in ``directory`` if its owner is gone (its lock is free), else ``None``."""
        try:
            lock_fd = os.open(directory / "lock", os.O_RDWR)
        except FileNotFoundError:
            return None  # being created or removed right now
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            return None
        if not directory.exists():  # removed by its adopter between listing and locking
            os.close(lock_fd)
            return None
        return cls(directory, lock_fd, **options)  # type: ignore[arg-type]

    def _read_acked(self) -> Position:
        data = os.pread(self._acked_fd, _ACKED.size, 0)
        if len(data) < _ACKED.size:
            return Position(1, 0)
        segment, offset = _ACKED.unpack(data)
        return Position(max(int(segment), 1), int(offset))

    def _recover(self) -> list[int]:
        """Segment numbers still holding undelivered data, with any torn tail cut off."""
        numbers = sorted(
            int(path.name[: -len(_SUFFIX)])
            for path in self.directory.glob(f"*{_SUFFIX}")
            if path.name[: -len(_SUFFIX)].isdigit()
        )
        for number in [n for n in numbers if n < self.acked.segment]:
            (self.directory / _segment_name(number)).unlink(missing_ok=True)
        numbers = [n for n in numbers if n >= self.acked.segment]
        for number in numbers:
            self._truncate_torn_tail(number)
        return numbers

    def _truncate_torn_tail(self, number: int) -> None:
        path = self.directory / _segment_name(number)
        valid = 0
        for entry in self._scan(number, 0):
            valid = entry.end.offset
        size = path.stat().st_size
        if valid < size:
            logger.warning(
                "auditwire: dropping %d byte(s) of an incomplete or damaged write at the end of "
                "%s (a crash during an append; that append had not returned)",
                size - valid,
                path,
            )
            os.truncate(path, valid)

    def _size(self, number: int) -> int:
        try:
            return (self.directory / _segment_name(number)).stat().st_size
        except FileNotFoundError:
            return 0

    # -- writing ----------------------------------------------------------------------------

    def pending_bytes(self) -> int:
        with self._lock:
            return self._pending_bytes()

    def _pending_bytes(self) -> int:
        return self._total - (self.acked.offset if self.acked.segment in self._sizes else 0)

    def append(self, payloads: Sequence[bytes]) -> Position:
        """Append all payloads in one write, or none (on a full spool or a failed write)."""
        now_ms = time.time_ns() // 1_000_000
        data = b"".join([_frame(p, now_ms) for p in payloads])
        with self._lock:
            pending = self._pending_bytes()
            if pending + len(data) > self.max_bytes:
                raise SpoolFullError(self.directory, self.max_bytes, pending, len(data))
            if self._append_fd is None or self._end.offset >= self.segment_bytes:
                self._open_next_segment()
            fd = self._append_fd
            assert fd is not None
            start = self._end.offset
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                os.ftruncate(fd, start)  # nothing half-written: the caller sees the error
                raise
            self._end = Position(self._end.segment, start + len(data))
            self._sizes[self._end.segment] = self._end.offset
            self._total += len(data)
            self._unsynced = True
            if self.fsync == "always" or (
                self.fsync == "interval"
                and time.monotonic() - self._last_sync >= self.fsync_interval
            ):
                self._sync_locked()
            return self._end

    def _open_next_segment(self) -> None:
        if self._append_fd is not None:
            if self._unsynced and self.fsync != "never":
                os.fsync(self._append_fd)
            os.close(self._append_fd)
            number = self._end.segment + 1
        else:
            # A recovered segment is continued only when it has room; else a new one starts.
            number = self._end.segment + (1 if self._end.offset >= self.segment_bytes else 0)
        path = self.directory / _segment_name(number)
        self._append_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._end = Position(number, os.fstat(self._append_fd).st_size)
        self._sizes.setdefault(number, self._end.offset)
        if self.fsync != "never":
            _fsync_directory(self.directory)

    def sync(self, *, if_due: bool = False) -> None:
        """fsync appended data (``if_due``: only when the interval policy says so)."""
        with self._lock:
            if not self._unsynced or self.fsync == "never":
                return
            if if_due and time.monotonic() - self._last_sync < self.fsync_interval:
                return
            self._sync_locked()

    def _sync_locked(self) -> None:
        if self._append_fd is not None:
            os.fsync(self._append_fd)
        self._unsynced = False
        self._last_sync = time.monotonic()

    @property
    def end(self) -> Position:
        return self._end

    # -- reading ----------------------------------------------------------------------------

    def read(self, start: Position, max_count: int, max_bytes: int) -> list[Entry]:
        """Up to ``max_count`` entries (and about ``max_bytes``) from ``start``, in order."""
        entries: list[Entry] = []
        size = 0
        position = start
        while len(entries) < max_count and size < max_bytes:
            end = self._end
            if position >= end:
                break
            limit = end.offset if position.segment == end.segment else None
            got = False
            for entry in self._scan(position.segment, position.offset, limit):
                entries.append(entry)
                size += len(entry.payload)
                position = entry.end
                got = True
                if len(entries) >= max_count or size >= max_bytes:
                    return entries
            if position.segment < end.segment:
                position = Position(self._next_segment(position.segment), 0)
            elif not got:
                break
        return entries

    def _next_segment(self, number: int) -> int:
        later = [n for n in list(self._sizes) if n > number]
        return min(later) if later else number + 1

    def _scan(self, number: int, offset: int, limit: int | None = None) -> Iterator[Entry]:
        """Valid frames of a segment from ``offset`` (up to ``limit``); stops at the first
        damaged or partial frame, which only a crash leaves, and only at a journal's tail."""
        try:
            file = open(self.directory / _segment_name(number), "rb", buffering=256 * 1024)  # noqa: SIM115
        except FileNotFoundError:
            return
        with file:
            file.seek(offset)
            at = offset
            while True:
                header = file.read(_FRAME.size)
                if len(header) < _FRAME.size:
                    return
                length, crc, appended_ms = _FRAME.unpack(header)
                end = at + _FRAME.size + length
                if length > MAX_PAYLOAD or (limit is not None and end > limit):
                    return
                payload = file.read(length)
                stamp = appended_ms.to_bytes(8, "little")
                if len(payload) < length or zlib.crc32(payload, zlib.crc32(stamp)) != crc:
                    return
                at = end
                yield Entry(payload, appended_ms, Position(number, at))

    def ack(self, position: Position) -> None:
        """Everything before ``position`` is delivered: persist that and drop old segments."""
        with self._lock:
            if position <= self.acked:
                return
            os.pwrite(self._acked_fd, _ACKED.pack(position.segment, position.offset), 0)
            old = [n for n in self._sizes if n < position.segment]
            self.acked = position
            for number in old:
                self._total -= self._sizes.pop(number)
        for number in old:
            (self.directory / _segment_name(number)).unlink(missing_ok=True)

    def drained(self) -> bool:
        return self.acked >= self._end

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Sync and release the journal; its data stays for the next start to replay."""
        with self._lock:
            if self._append_fd is not None:
                if self._unsynced and self.fsync != "never":
                    os.fsync(self._append_fd)
                os.close(self._append_fd)
                self._append_fd = None
            with contextlib.suppress(OSError):
                os.close(self._acked_fd)
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)  # releases the flock

    def remove(self) -> None:
        """Delete a drained journal (an adopted orphan once replayed). The directory goes
        first, while the lock is still held, so no other process can adopt it meanwhile."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self.close()


class Spool:
    """The journals under one directory: this process's own, and orphans to replay.

    ``max_bytes`` caps this process's undelivered data; ``fsync`` says when appended data is
    forced to disk: ``"always"`` (every append; survives power loss; slowest), ``"interval"``
    (the default: at most every ``fsync_interval`` seconds), or ``"never"`` (left to the OS).
    Any policy survives the process being killed, since written data is in the OS's hands.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = 1024**3,
        segment_bytes: int = 16 * 1024**2,
        fsync: FsyncPolicy = "interval",
        fsync_interval: float = 1.0,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        if max_bytes < 1 or segment_bytes < 1:
            raise ValueError("max_bytes and segment_bytes must be positive")
        self.directory = Path(directory)
        self._options: dict[str, object] = {
            "segment_bytes": segment_bytes,
            "max_bytes": max_bytes,
            "fsync": fsync,
            "fsync_interval": fsync_interval,
        }
        self._journal: Journal | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        renew_in_child(self, Spool._renew_lock)

    def _renew_lock(self) -> None:
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r})"

    @property
    def journal(self) -> Journal:
        """This process's journal, created on first use (and anew in a forked child: the
        parent's stays the parent's)."""
        journal = self._journal
        if journal is None or self._pid != os.getpid():
            with self._lock:
                if self._journal is None or self._pid != os.getpid():
                    self._pid = os.getpid()
                    self._journal = Journal.create(self.directory, **self._options)
                journal = self._journal
        return journal

    def current(self) -> Journal | None:
        """This process's journal if it has one yet (never creates it)."""
        return self._journal if self._pid == os.getpid() else None

    def append(self, payloads: Sequence[bytes]) -> Position:
        return self.journal.append(payloads)

    def orphans(self) -> list[Journal]:
        """Journals whose process is gone, oldest first, locked for this process to replay."""
        if not self.directory.is_dir():
            return []
        own = self._journal.directory if self._journal is not None else None
        found = []
        for path in sorted(self.directory.iterdir()):
            if path == own or not path.is_dir():
                continue
            journal = Journal.adopt(path, **self._options)
            if journal is not None:
                found.append(journal)
        return found

    def close(self) -> None:
        """Release this process's journal; a drained one is removed, one with undelivered
        data stays for the next start to replay."""
        if self._journal is not None and self._pid == os.getpid():
            if self._journal.drained():
                self._journal.remove()
            else:
                self._journal.close()
            self._journal = None
