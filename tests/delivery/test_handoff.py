from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

import pytest

from auditwire import AuditRecord
from auditwire.delivery.handoff import HandOff
from tests.records import full_record


class SlowSink:
    """Holds the writes of threads named ``held-*`` until released (a store stuck on its disk);
    records which thread wrote what."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.written: list[tuple[str, list[str]]] = []
        self.entered = threading.Semaphore(0)

    def write(self, records: Sequence[AuditRecord]) -> None:
        if threading.current_thread().name.startswith("held"):
            self.entered.release()
            self.release.wait(10)
        self.written.append((threading.current_thread().name, [r.id for r in records]))

    def close(self) -> None:
        pass


def _stuck_writers(writer: HandOff, sink: SlowSink, count: int) -> list[threading.Thread]:
    """``count`` threads, each stuck writing a batch of one record to the slow sink."""
    threads = [
        threading.Thread(target=writer.submit, args=(full_record(),), name=f"held-{n}")
        for n in range(count)
    ]
    for thread in threads:
        thread.start()
        assert sink.entered.acquire(timeout=10)
    return threads


def _unstick(writer: HandOff, sink: SlowSink, held: list[threading.Thread]) -> None:
    """Let the stuck writers finish, and wait until everything is written."""
    sink.release.set()
    for thread in held:
        thread.join(10)
    assert writer.flush(timeout=10)


class FailingSink:
    def write(self, records: Sequence[AuditRecord]) -> None:
        raise OSError("disk full")

    def close(self) -> None:
        pass


def test_when_writers_are_stuck_the_caller_writes_instead_of_dropping() -> None:
    sink = SlowSink()
    writer = HandOff(sink, max_pending=2, batch_size=1)
    held = _stuck_writers(writer, sink, 2)
    mine = [full_record() for _ in range(3)]
    for record in mine:
        writer.submit(record)  # pending is at its bound: written here and now
    caller = threading.current_thread().name
    assert [ids for name, ids in sink.written if name == caller] == [[r.id] for r in mine]
    _unstick(writer, sink, held)
    stats = writer.stats()
    assert (stats.written, stats.pending, stats.overflowed) == (5, 0, 3)
    writer.close()


def test_failures_are_counted_and_logged_not_raised() -> None:
    writer = HandOff(FailingSink())
    writer.submit(full_record())
    assert writer.flush(timeout=10)
    stats = writer.stats()
    assert stats.failed == 1
    assert stats.last_error is not None and "disk full" in stats.last_error
    writer.close()


def test_close_flushes_and_refuses_later_submissions() -> None:
    sink = SlowSink()
    writer = HandOff(sink)
    writer.submit(full_record())
    writer.close()
    assert sum(len(ids) for _, ids in sink.written) == 1
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(full_record())


class Broken:
    def __call__(self) -> Sequence[AuditRecord]:
        raise RuntimeError("capture bug")


def test_a_failing_build_loses_only_itself_and_the_worker_survives() -> None:
    sink = SlowSink()
    writer = HandOff(sink, linger=0)
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
    writer = HandOff(FailingSink(), linger=0)
    for _ in range(20):
        writer.submit(full_record())
        assert writer.flush(timeout=10)
    assert writer.stats().failed == 20
    assert len([r for r in caplog.records if r.name == "auditwire"]) == 1
    writer.close()


def test_overflow_drop_counts_what_it_drops() -> None:
    sink = SlowSink()
    writer = HandOff(sink, max_pending=2, batch_size=1, overflow="drop")
    held = _stuck_writers(writer, sink, 2)
    for _ in range(4):
        writer.submit(full_record())
    caller = threading.current_thread().name
    assert not [ids for name, ids in sink.written if name == caller]  # the caller never writes
    _unstick(writer, sink, held)
    stats = writer.stats()
    assert (stats.written, stats.dropped, stats.submitted) == (2, 4, 6)
    writer.close()


def test_overflow_block_waits_for_room_and_loses_nothing() -> None:
    sink = SlowSink()
    writer = HandOff(sink, max_pending=2, batch_size=1, overflow="block")
    held = _stuck_writers(writer, sink, 2)
    record = full_record()
    submitter = threading.Thread(target=writer.submit, args=(record,))
    submitter.start()
    submitter.join(timeout=0.5)
    assert submitter.is_alive()  # waiting for room
    sink.release.set()
    submitter.join(timeout=10)
    assert not submitter.is_alive()
    for thread in held:
        thread.join(10)
    assert writer.flush(timeout=10)
    assert len(_written_ids(sink)) == 3 and record.id in _written_ids(sink)
    assert writer.stats().dropped == 0
    writer.close()


def test_pending_is_back_to_zero_once_an_overflow_is_over() -> None:
    """Records the caller wrote itself are not counted as pending forever."""
    sink = SlowSink()
    writer = HandOff(sink, max_pending=2, batch_size=1)
    held = _stuck_writers(writer, sink, 2)
    for _ in range(5):
        writer.submit(full_record())
    _unstick(writer, sink, held)
    assert writer.stats().pending == 0
    sink.written.clear()
    writer.submit(full_record())
    writer.submit(full_record())
    assert [name for name, _ in sink.written] == [threading.current_thread().name] * 2
    writer.close()


def test_an_unknown_overflow_policy_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="overflow must be one of spool, block, drop"):
        HandOff(SlowSink(), overflow="ignore")  # type: ignore[arg-type]


class Facts:
    """A deferred item that notes which thread built it, and can be held mid-build."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.record = full_record()
        self.built_by: str | None = None
        self.hold = hold
        self.building = threading.Event()

    def __call__(self) -> Sequence[AuditRecord]:
        self.built_by = threading.current_thread().name
        self.building.set()
        if self.hold is not None:
            assert self.hold.wait(10)
        return (self.record,)


def _written_ids(sink: SlowSink) -> list[str]:
    return sorted(i for _, ids in sink.written for i in ids)


def test_a_full_batch_is_built_and_written_by_the_thread_that_filled_it() -> None:
    sink = SlowSink()
    writer = HandOff(sink, batch_size=4, linger=60)
    items = [Facts() for _ in range(4)]
    for item in items[:3]:
        writer.submit(item)
    assert [i.built_by for i in items[:3]] == [None] * 3  # waiting for the batch to fill
    writer.submit(items[3])
    caller = threading.current_thread().name
    assert {i.built_by for i in items} == {caller}
    assert sink.written == [(caller, [i.record.id for i in items])]
    writer.close()


def test_a_batch_that_does_not_fill_is_built_by_the_writer_once_it_has_waited() -> None:
    sink = SlowSink()
    writer = HandOff(sink, batch_size=100, linger=0.05)
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
    writer = HandOff(sink, batch_size=2, linger=60)
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


def test_a_forked_child_writes_its_own_items_not_the_parent_s() -> None:
    import warnings

    sink = SlowSink()
    writer = HandOff(sink, batch_size=100, linger=60)
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
