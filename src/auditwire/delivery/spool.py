"""The spool: records on local disk until a remote store has them.

Every record the delivery pipeline accepts is appended here first, so what ``record()``
accepted survives the process being killed, a cluster that is away for hours, and a restart.
Each process appends to a journal of its own (a directory), so gunicorn workers never contend
for a file; a journal left behind by a dead process is adopted by the next one that starts and
replayed in order.

A journal directory holds:

- ``lock`` — ``flock``-ed by the owner for as long as it lives; a lock that can be taken marks
  an orphan.
- ``acked`` — the position up to which entries are delivered (segment number, offset, and a
  CRC of both). It is written after each delivered batch, and synced before delivered segments
  are deleted: losing it only re-sends a batch, which the store refuses as a duplicate.
- ``00000001.seg``, ``00000002.seg``… — frames of ``<u32 length><u32 crc32><u64 appended at,
  ms>`` followed by the payload. The CRC covers time and payload, so a torn tail (a write cut by
  a crash) is recognised and dropped rather than replayed as garbage.

Damage on disk loses only what was damaged, and says so. A damaged frame is skipped and the
reader finds the next intact one (by its CRC); only a damaged *tail* of the journal — the
append a crash cut short — is cut off. A position file that fails its CRC or points past the
data is not believed: delivery starts again from the oldest segment (the store refuses what it
has as duplicates) and nothing is deleted on its word. A missing segment, a journal whose
``lock`` file is gone (adopted all the same once its process is gone) and a file that cannot be
read are each logged with their place; damaged frames are counted (:attr:`Spool.damaged`).

Segments wholly delivered are deleted; the total undelivered size is capped, and an append that
would pass the cap is refused whole with :class:`SpoolFullError`. A spool that cannot be used
at all (a read-only or unreadable directory) raises :class:`SpoolUnusableError`, which names
the directory and the fix.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from auditwire._fork import renew_in_child
from auditwire._ids import new_id
from auditwire.errors import SpoolFullError, SpoolUnusableError

__all__ = [
    "FSYNC_POLICIES",
    "SPOOL_ENV",
    "Entry",
    "FsyncPolicy",
    "Journal",
    "Position",
    "Spool",
    "SpoolFullError",
    "SpoolUnusableError",
    "default_root",
]

logger = logging.getLogger("auditwire")

#: Environment variable naming the spool directory when none is passed.
SPOOL_ENV = "AUDITWIRE_SPOOL"
FsyncPolicy = Literal["always", "interval", "never"]
FSYNC_POLICIES: tuple[FsyncPolicy, ...] = ("always", "interval", "never")
_FRAME = struct.Struct("<IIQ")
_ACKED = struct.Struct("<QQ")  # 0.1's position file: no CRC
_ACKED_CRC = struct.Struct("<QQI")
#: Frame times outside these bounds mark a header as damage when searching for the next frame.
_EARLIEST_MS = 1_500_000_000_000  # 2017
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


def _intact(payload: bytes, appended_ms: int, crc: int) -> bool:
    return zlib.crc32(payload, zlib.crc32(appended_ms.to_bytes(8, "little"))) == crc


def _lock(fd: int, root: Path) -> None:
    """Take the journal's lock, or raise ``BlockingIOError`` when another process has it. The
    spool needs POSIX file locks; where there are none (Windows), opening one says so — the
    rest of auditwire, and the embedded SQLite store, work there all the same."""
    try:
        import fcntl
    except ImportError:
        raise SpoolUnusableError(
            root, "the spool needs POSIX file locks (fcntl), which this platform lacks"
        ) from None
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _process_alive(journal_name: str) -> bool:
    """Whether the process a journal is named after (``<id>-<pid>``) still runs; ``True`` when
    that cannot be told, so a journal is never taken from a live owner."""
    pid = journal_name.rpartition("-")[2]
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by another user
        return True
    return True


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
        on_damage: Callable[[int, str], None] | None = None,
    ) -> None:
        self.directory = directory
        self._lock_fd = lock_fd
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self._on_damage = on_damage
        self._reported: set[tuple[int, int]] = set()  # damaged regions already reported
        self._lock = threading.Lock()
        self._acked_fd = os.open(directory / "acked", os.O_RDWR | os.O_CREAT, 0o600)
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
        """A new journal for this process under ``root``; names sort by creation time. It is
        made under a hidden name and renamed once locked, so a journal directory without a
        lock file is always damage, never one being made."""
        root.mkdir(parents=True, exist_ok=True)
        name = f"{new_id()[4:]}-{os.getpid()}"
        making = root / f".{name}"
        making.mkdir(mode=0o700)
        lock_fd = os.open(making / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        _lock(lock_fd, root)
        directory = root / name
        os.rename(making, directory)
        return cls(directory, lock_fd, **options)  # type: ignore[arg-type]

    @classmethod
    def adopt(cls, directory: Path, **options: object) -> Journal | None:
        """The journal in ``directory`` if its owner is gone (its lock is free), else ``None``.
        A journal whose lock file is missing is adopted once the process named in it has gone
        (its lock cannot tell), so its records are delivered all the same."""
        try:
            lock_fd = os.open(directory / "lock", os.O_RDWR)
        except FileNotFoundError:
            if not directory.exists() or _process_alive(directory.name):
                return None  # removed by its adopter just now, or its owner still runs
            logger.error(
                "auditwire: spool damage: %s had no lock file; its process is gone, so it is "
                "adopted and delivered",
                directory,
            )
            lock_fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(lock_fd, directory.parent)
        except BlockingIOError:
            os.close(lock_fd)
            return None
        if not directory.exists():  # removed by its adopter between listing and locking
            os.close(lock_fd)
            return None
        return cls(directory, lock_fd, **options)  # type: ignore[arg-type]

    def _read_acked(self, sizes: dict[int, int]) -> Position:
        """The acknowledged position, believed only when its CRC holds (0.1's files have none)
        and it points into the data on disk; otherwise delivery starts over from the oldest
        segment: the store refuses what it has as duplicates, and nothing is deleted on the
        word of a damaged file."""
        data = os.pread(self._acked_fd, _ACKED_CRC.size, 0)
        oldest = Position(min(sizes, default=1), 0)
        if not data:
            return oldest
        if len(data) == _ACKED_CRC.size:
            segment, offset, crc = _ACKED_CRC.unpack(data)
            sound = zlib.crc32(data[: _ACKED.size]) == crc
        elif len(data) == _ACKED.size:
            (segment, offset), sound = _ACKED.unpack(data), True
        else:
            segment, offset, sound = 0, 0, False
        newest = max(sizes, default=0)
        if (
            sound
            and segment >= 1
            and (
                (segment > newest and offset == 0 and segment == newest + 1)  # all delivered
                or (segment <= newest and offset <= sizes.get(segment, 0))
            )
        ):
            return Position(segment, offset)
        logger.error(
            "auditwire: the position file %s is damaged; delivering %s again from its oldest "
            "segment (what the store already has is refused as a duplicate)",
            self.directory / "acked",
            self.directory,
        )
        return oldest

    def _write_acked(self, position: Position) -> None:
        packed = _ACKED.pack(position.segment, position.offset)
        os.pwrite(self._acked_fd, packed + zlib.crc32(packed).to_bytes(4, "little"), 0)

    def _recover(self) -> list[int]:
        """Segment numbers still holding undelivered data: the position file checked against
        them, delivered segments deleted, missing ones and unreadable files reported, and a
        torn tail cut off the last."""
        sizes: dict[int, int] = {}
        for path in self.directory.glob(f"*{_SUFFIX}"):
            stem = path.name[: -len(_SUFFIX)]
            if not stem.isdigit():
                continue
            if not path.is_file():
                self._damage(0, f"{path} is not a file; it is left alone and skipped")
                continue
            sizes[int(stem)] = path.stat().st_size
        self.acked = self._read_acked(sizes)
        for number in [n for n in sizes if n < self.acked.segment]:
            (self.directory / _segment_name(number)).unlink(missing_ok=True)
        numbers = sorted(n for n in sizes if n >= self.acked.segment)
        if numbers:
            missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
            if missing:
                self._damage(
                    0,
                    f"segment(s) {', '.join(map(str, missing))} of {self.directory} are missing "
                    "(deleted?); their records are lost",
                )
            self._truncate_torn_tail(numbers[-1])
        return numbers

    def _truncate_torn_tail(self, number: int) -> None:
        """Cut what follows the last intact frame of the journal's last segment: the append a
        crash interrupted (it had not returned), or damage at the very end."""
        path = self.directory / _segment_name(number)
        valid = 0
        for entry in self._scan(number, 0, report=False):
            valid = entry.end.offset
        size = path.stat().st_size
        if valid < size:
            logger.warning(
                "auditwire: dropping %d byte(s) after the last intact frame of %s (an append a "
                "crash interrupted, which had not returned, or damage at the end)",
                size - valid,
                path,
            )
            os.truncate(path, valid)

    def _damage(self, frames: int, message: str) -> None:
        logger.error("auditwire: spool damage: %s", message)
        if self._on_damage is not None:
            self._on_damage(frames, message)

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

    def _scan(
        self, number: int, offset: int, limit: int | None = None, *, report: bool = True
    ) -> Iterator[Entry]:
        """Intact frames of a segment from ``offset`` (up to ``limit``), in order. A frame that
        fails its CRC, or a header that cannot be one, is damage: the frames after it are found
        again by searching for the next offset where a whole frame checks out, and the bytes
        skipped are reported once (``report``), as one damaged frame. What cannot be resumed
        from — a partial frame at the end — ends the scan."""
        path = self.directory / _segment_name(number)
        try:
            file = open(path, "rb", buffering=256 * 1024)  # noqa: SIM115
        except FileNotFoundError:
            return
        except OSError as exc:
            if report:
                self._damage(0, f"{path} cannot be read ({exc.strerror}); its records wait")
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
                whole = length <= MAX_PAYLOAD and (limit is None or end <= limit)
                payload = file.read(length) if whole else b""
                if whole and len(payload) == length and _intact(payload, appended_ms, crc):
                    at = end
                    yield Entry(payload, appended_ms, Position(number, at))
                    continue
                resumed = self._resume(file, at, limit)
                if resumed is None:
                    return
                if report and (number, at) not in self._reported:
                    self._reported.add((number, at))
                    self._damage(
                        1,
                        f"skipped {resumed - at} damaged byte(s) (one frame) at offset {at} of "
                        f"{path}; the frames after it are delivered",
                    )
                at = resumed
                file.seek(at)

    @staticmethod
    def _resume(file: IO[bytes], at: int, limit: int | None) -> int | None:
        """The offset of the next whole, intact frame after the damaged one at ``at``, or
        ``None``. Each candidate offset must hold a plausible header whose payload checks out
        against its CRC, so garbage is not mistaken for a frame."""
        file.seek(at + 1)
        rest = file.read() if limit is None else file.read(max(0, limit - at - 1))
        now_ms = time.time_ns() // 1_000_000 + 86_400_000
        for start in range(len(rest) - _FRAME.size + 1):
            length, crc, appended_ms = _FRAME.unpack_from(rest, start)
            body = start + _FRAME.size
            if (
                length <= MAX_PAYLOAD
                and body + length <= len(rest)
                and _EARLIEST_MS <= appended_ms <= now_ms
                and _intact(rest[body : body + length], appended_ms, crc)
            ):
                return at + 1 + start
        return None

    def ack(self, position: Position) -> None:
        """Everything before ``position`` is delivered: persist that and drop old segments."""
        with self._lock:
            if position <= self.acked:
                return
            self._write_acked(position)
            old = [n for n in self._sizes if n < position.segment]
            if old:  # the position must be on disk before what it vouches for goes
                os.fsync(self._acked_fd)
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
        #: Frames lost to damage on disk, found by this process.
        self.damaged = 0
        #: What made the spool unusable, while it is (``None`` once it works).
        self.unusable: SpoolUnusableError | None = None
        self._options: dict[str, object] = {
            "segment_bytes": segment_bytes,
            "max_bytes": max_bytes,
            "fsync": fsync,
            "fsync_interval": fsync_interval,
            "on_damage": self._note_damage,
        }
        self._journal: Journal | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        renew_in_child(self, Spool._renew_lock)

    def _renew_lock(self) -> None:
        self._lock = threading.Lock()

    def _note_damage(self, frames: int, message: str) -> None:
        self.damaged += frames

    def _unusable(self, exc: OSError) -> SpoolUnusableError:
        problem = exc.strerror or str(exc)
        if exc.filename:
            problem = f"{problem} ({exc.filename})"
        self.unusable = SpoolUnusableError(self.directory, problem)
        return self.unusable

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
                    self._journal = None
                    try:
                        self._journal = Journal.create(self.directory, **self._options)
                    except OSError as exc:
                        raise self._unusable(exc) from exc
                    except SpoolUnusableError as exc:
                        self.unusable = exc
                        raise
                    self.unusable = None
                journal = self._journal
        return journal

    def current(self) -> Journal | None:
        """This process's journal if it has one yet (never creates it)."""
        return self._journal if self._pid == os.getpid() else None

    def append(self, payloads: Sequence[bytes]) -> Position:
        """Append to this process's journal; a spool that cannot be written raises
        :class:`SpoolUnusableError` (nothing half-written)."""
        journal = self.journal
        try:
            position = journal.append(payloads)
        except OSError as exc:
            raise self._unusable(exc) from exc
        self.unusable = None
        return position

    def orphans(self) -> list[Journal]:
        """Journals whose process is gone, oldest first, locked for this process to replay.
        One that cannot be opened is skipped and logged; a directory that cannot be listed
        raises :class:`SpoolUnusableError`."""
        try:
            if not self.directory.exists():
                return []
            paths = sorted(self.directory.iterdir())
        except OSError as exc:
            raise self._unusable(exc) from exc
        own = self._journal.directory if self._journal is not None else None
        found = []
        for path in paths:
            if path == own or path.name.startswith(".") or not path.is_dir():
                continue
            try:
                journal = Journal.adopt(path, **self._options)
            except OSError as exc:
                logger.error(
                    "auditwire: spool damage: the journal %s cannot be opened (%s); its records "
                    "wait there until it can",
                    path,
                    exc.strerror or exc,
                )
                continue
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
