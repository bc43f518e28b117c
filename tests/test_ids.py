from __future__ import annotations

import multiprocessing
import time

from auditwire._ids import ID_PATTERN, after_fork, id_timestamp_ms, new_id


def test_id_carries_its_creation_time() -> None:
    now = time.time_ns() // 1_000_000
    record_id = new_id()
    assert ID_PATTERN.match(record_id)
    assert abs(id_timestamp_ms(record_id) - now) < 1000


def test_ids_stay_increasing_within_one_millisecond_and_when_the_clock_steps_back() -> None:
    after_fork()  # forget this process's sequence so the fixed clock below is honoured
    try:
        same_ms = [new_id(now_ms=1_700_000_000_000) for _ in range(500)]
        stepped_back = new_id(now_ms=1_699_999_999_000)
    finally:
        after_fork()
    assert same_ms == sorted(same_ms)
    assert len(set(same_ms)) == 500
    assert {id_timestamp_ms(i) for i in same_ms} == {1_700_000_000_000}
    assert stepped_back > same_ms[-1]


def _child_id(queue: multiprocessing.Queue[str]) -> None:
    queue.put(new_id(now_ms=1_800_000_000_000))


def test_forked_children_do_not_continue_the_parent_sequence() -> None:
    # Without the fork hook both children would continue the parent's sequence and make the
    # same id (the parent's plus one).
    after_fork()
    parent = new_id(now_ms=1_800_000_000_000)
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = context.Queue()
    children = [context.Process(target=_child_id, args=(queue,)) for _ in range(2)]
    for child in children:
        child.start()
    ids = {queue.get(timeout=10) for _ in children}
    for child in children:
        child.join()
    after_fork()
    assert parent not in ids
    assert len(ids) == 2
