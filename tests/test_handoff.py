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
