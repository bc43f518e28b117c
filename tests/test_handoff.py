from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence

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


class Facts:
    """A deferred item that notes which thread built it, and can be held mid-build."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.record = full_record()
        self.built_by: str | None = None
        self.hold = hold
        self.building = threading.Event()

    def build(self) -> Sequence[AuditRecord]:
        self.built_by = threading.current_thread().name
        self.building.set()
        if self.hold is not None:
            assert self.hold.wait(10)
        return (self.record,)


def _written_ids(sink: SlowSink) -> list[str]:
    return sorted(i for _, ids in sink.written for i in ids)


def test_a_full_batch_is_built_by_the_thread_that_filled_it_and_written_by_the_writer() -> None:
    sink = SlowSink()
    sink.release.set()
    writer = BackgroundWriter(sink, batch_size=4, linger=60)
    items = [Facts() for _ in range(4)]
    for item in items[:3]:
        writer.submit(item)
    assert [i.built_by for i in items[:3]] == [None] * 3  # waiting for the batch to fill
    writer.submit(items[3])
    assert {i.built_by for i in items} == {threading.current_thread().name}
    assert writer.flush(timeout=10)
    assert [name for name, _ in sink.written] == ["auditwire-writer"]
    assert _written_ids(sink) == sorted(i.record.id for i in items)
    writer.close()


def test_a_batch_that_does_not_fill_is_built_by_the_writer_once_it_has_waited() -> None:
    sink = SlowSink()
    sink.release.set()
    writer = BackgroundWriter(sink, batch_size=100, linger=0.05)
    items = [Facts() for _ in range(3)]
    for item in items:
        writer.submit(item)
    deadline = time.monotonic() + 10
    while len(_written_ids(sink)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _written_ids(sink) == sorted(i.record.id for i in items)  # no flush asked for it
    assert {i.built_by for i in items} == {"auditwire-writer"}
    writer.close()


def test_flush_waits_for_a_batch_another_thread_is_still_building() -> None:
    sink = SlowSink()
    sink.release.set()
    writer = BackgroundWriter(sink, batch_size=2, linger=60)
    hold = threading.Event()
    items = [Facts(hold), Facts()]

    def submit_both() -> None:
        for item in items:
            writer.submit(item)

    submitter = threading.Thread(target=submit_both)
    submitter.start()
    assert items[0].building.wait(10)  # the submitting thread is inside the batch's build
    assert not writer.flush(timeout=0.3)
    assert sink.written == []
    hold.set()
    assert writer.flush(timeout=10)
    assert _written_ids(sink) == sorted(i.record.id for i in items)
    submitter.join(10)
    writer.close()


class PreparingSink:
    """Notes where encoding and the write itself ran."""

    def __init__(self) -> None:
        self.prepared_by: list[str] = []
        self.written_by: list[str] = []
        self.records: list[str] = []

    def prepare(self, records: Sequence[AuditRecord]) -> Callable[[], None]:
        self.prepared_by.append(threading.current_thread().name)
        ids = [r.id for r in records]

        def write() -> None:
            self.written_by.append(threading.current_thread().name)
            self.records.extend(ids)

        return write

    def write(self, records: Sequence[AuditRecord]) -> None:
        self.prepare(records)()

    def close(self) -> None:
        pass


def test_a_preparing_sink_encodes_in_the_building_thread_and_writes_in_the_writer() -> None:
    sink = PreparingSink()
    writer = BackgroundWriter(sink, batch_size=3, linger=60)
    items = [Facts() for _ in range(3)]
    for item in items:
        writer.submit(item)
    assert writer.flush(timeout=10)
    assert sink.prepared_by == [threading.current_thread().name]
    assert sink.written_by == ["auditwire-writer"]
    assert sorted(sink.records) == sorted(i.record.id for i in items)
    writer.close()


def test_a_forked_child_writes_its_own_items_not_the_parent_s() -> None:
    import warnings

    sink = SlowSink()
    sink.release.set()
    writer = BackgroundWriter(sink, batch_size=100, linger=60)
    parents = [Facts(), Facts()]
    for item in parents:
        writer.submit(item)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # forking a threaded process
        pid = os.fork()
        if pid == 0:  # the child: exit without running the test's teardown
            code = 1
            try:
                child = Facts()
                writer.submit(child)
                if writer.flush(timeout=10) and _written_ids(sink) == [child.record.id]:
                    code = 0
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert writer.flush(timeout=10)
    assert _written_ids(sink) == sorted(i.record.id for i in parents)
    writer.close()
