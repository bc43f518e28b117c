from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from auditwire import AuditRecord
from auditwire.handoff import BackgroundWriter
from tests.records import full_record


class SlowSink:
    """Blocks writes until released; records which thread wrote what."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.written: list[tuple[str, list[str]]] = []

    def write(self, records: Sequence[AuditRecord]) -> None:
        if threading.current_thread().name == "auditwire-writer":
            self.release.wait(10)
        self.written.append((threading.current_thread().name, [r.id for r in records]))

    def close(self) -> None:
        pass


class FailingSink:
    def write(self, records: Sequence[AuditRecord]) -> None:
        raise OSError("disk full")

    def close(self) -> None:
        pass


def test_a_full_queue_makes_the_caller_write_instead_of_dropping() -> None:
    sink = SlowSink()
    writer = BackgroundWriter(sink, max_pending=2, batch_size=1, linger=0)
    records = [full_record() for _ in range(5)]
    for record in records:
        writer.submit(record)
    caller = threading.current_thread().name
    by_caller = [ids for name, ids in sink.written if name == caller]
    assert len(by_caller) >= 2  # the overflow, written synchronously
    sink.release.set()
    assert writer.flush(timeout=10)
    written = sorted(i for _, ids in sink.written for i in ids)
    assert written == sorted(r.id for r in records)
    stats = writer.stats()
    assert (stats.written, stats.pending, stats.overflowed) == (5, 0, len(by_caller))
    writer.close()


def test_failures_are_counted_and_logged_not_raised() -> None:
    writer = BackgroundWriter(FailingSink())
    writer.submit(full_record())
    assert writer.flush(timeout=10)
    stats = writer.stats()
    assert stats.failed == 1
    assert stats.last_error is not None and "disk full" in stats.last_error
    writer.close()


def test_close_flushes_and_refuses_later_submissions() -> None:
    sink = SlowSink()
    sink.release.set()
    writer = BackgroundWriter(sink)
    writer.submit(full_record())
    writer.close()
    assert sum(len(ids) for _, ids in sink.written) == 1
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(full_record())


class Broken:
    def build(self) -> Sequence[AuditRecord]:
        raise RuntimeError("capture bug")


def test_a_failing_build_loses_only_itself_and_the_worker_survives() -> None:
    sink = SlowSink()
    sink.release.set()
    writer = BackgroundWriter(sink, linger=0)
    good = [full_record() for _ in range(3)]
    writer.submit(good[0])
    writer.submit(Broken())
    writer.submit(good[1])
    assert writer.flush(timeout=10)
    writer.submit(good[2])
    assert writer.flush(timeout=10)
    assert sorted(i for _, ids in sink.written for i in ids) == sorted(r.id for r in good)
    assert writer.stats().failed == 1
    writer.close()


def test_failures_are_all_counted_but_logged_sparingly(caplog: pytest.LogCaptureFixture) -> None:
    writer = BackgroundWriter(FailingSink(), linger=0)
    for _ in range(20):
        writer.submit(full_record())
        assert writer.flush(timeout=10)
    assert writer.stats().failed == 20
    assert len([r for r in caplog.records if r.name == "auditwire"]) == 1
    writer.close()


def test_overflow_drop_counts_what_it_drops() -> None:
    sink = SlowSink()
    writer = BackgroundWriter(sink, max_pending=2, batch_size=1, linger=0, overflow="drop")
    records = [full_record() for _ in range(6)]
    for record in records:
        writer.submit(record)
    caller = threading.current_thread().name
    assert not [ids for name, ids in sink.written if name == caller]  # the caller never writes
    sink.release.set()
    assert writer.flush(timeout=10)
    stats = writer.stats()
    assert stats.dropped >= 3
    assert stats.written + stats.dropped == 6
    writer.close()


def test_overflow_block_waits_for_room_and_loses_nothing() -> None:
    sink = SlowSink()
    writer = BackgroundWriter(sink, max_pending=2, batch_size=1, linger=0, overflow="block")
    records = [full_record() for _ in range(6)]

    def submit_all() -> None:
        for record in records:
            writer.submit(record)

    submitter = threading.Thread(target=submit_all)
    submitter.start()
    submitter.join(timeout=0.5)
    assert submitter.is_alive()  # blocked on the full queue
    sink.release.set()
    submitter.join(timeout=10)
    assert not submitter.is_alive()
    assert writer.flush(timeout=10)
    assert sorted(i for _, ids in sink.written for i in ids) == sorted(r.id for r in records)
    assert all(name == "auditwire-writer" for name, _ in sink.written)
    assert writer.stats().dropped == 0
    writer.close()


def test_the_queue_is_used_again_once_an_overflow_is_over() -> None:
    """Records the caller wrote itself are not counted as pending forever."""
    sink = SlowSink()
    writer = BackgroundWriter(sink, max_pending=2, batch_size=1, linger=0)
    for _ in range(10):
        writer.submit(full_record())
    sink.release.set()
    assert writer.flush(timeout=10)
    sink.written.clear()
    for _ in range(2):
        writer.submit(full_record())
    assert writer.flush(timeout=10)
    assert [name for name, _ in sink.written] == ["auditwire-writer"] * 2


def test_an_unknown_overflow_policy_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="overflow must be one of spool, block, drop"):
        BackgroundWriter(SlowSink(), overflow="ignore")  # type: ignore[arg-type]
