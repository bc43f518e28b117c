"""The spool on its own: framing, segments, acknowledgement, orphans, torn writes, the cap."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditwire.delivery.spool import Journal, Position, Spool, SpoolFullError


def payloads(n: int, start: int = 0) -> list[bytes]:
    return [f"entry-{i:05d}".encode() * 3 for i in range(start, start + n)]


def read_all(journal: Journal) -> list[bytes]:
    return [e.payload for e in journal.read(journal.acked, 10**9, 10**12)]


def test_entries_come_back_in_order_across_segments_and_acked_segments_go(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=500)
    for chunk in range(10):
        spool.append(payloads(5, chunk * 5))
    journal = spool.current()
    assert journal is not None
    assert read_all(journal) == payloads(50)
    segments = sorted(journal.directory.glob("*.seg"))
    assert len(segments) > 3
    first = journal.read(journal.acked, 20, 10**9)
    assert [e.payload for e in first] == payloads(20)
    journal.ack(first[-1].end)
    assert read_all(journal) == payloads(30, 20)
    assert len(sorted(journal.directory.glob("*.seg"))) < len(segments)
    journal.ack(journal.end)
    assert journal.drained()
    assert journal.pending_bytes() == 0
    spool.close()


def test_reads_are_bounded_by_count_and_bytes(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(payloads(100))
    journal = spool.current()
    assert journal is not None
    assert len(journal.read(journal.acked, 7, 10**9)) == 7
    one_size = len(payloads(1)[0])
    assert len(journal.read(journal.acked, 100, one_size * 3)) == 3
    spool.close()


def test_a_live_journal_is_not_adopted_and_a_dead_ones_is_replayed_from_its_ack(
    tmp_path: Path,
) -> None:
    first = Spool(tmp_path)
    first.append(payloads(10))
    journal = first.current()
    assert journal is not None
    entries = journal.read(journal.acked, 4, 10**9)
    journal.ack(entries[-1].end)
    assert Spool(tmp_path).orphans() == []  # its owner holds the lock
    first.close()
    orphans = Spool(tmp_path).orphans()
    assert len(orphans) == 1
    assert read_all(orphans[0]) == payloads(6, 4)
    assert Spool(tmp_path).orphans() == []  # now locked by its adopter
    orphans[0].ack(orphans[0].end)
    orphans[0].remove()
    assert list(tmp_path.iterdir()) == []


def test_orphans_come_oldest_first(tmp_path: Path) -> None:
    for n in range(3):
        spool = Spool(tmp_path)
        spool.append([f"journal-{n}".encode()])
        spool.close()
    orphans = Spool(tmp_path).orphans()
    assert [read_all(o) for o in orphans] == [[b"journal-0"], [b"journal-1"], [b"journal-2"]]
    for orphan in orphans:
        orphan.close()


LAST = b"the append a crash interrupted"


@pytest.mark.parametrize(
    ("damage", "last_kept"),
    [
        pytest.param(lambda data: data[:-5], False, id="write cut short"),
        pytest.param(lambda data: data[:-1] + bytes([data[-1] ^ 0xFF]), False, id="damaged"),
        pytest.param(lambda data: data + b"\x07\x00", True, id="half a header after it"),
    ],
)
def test_a_torn_tail_is_dropped_and_everything_before_it_kept(
    tmp_path: Path, damage: Callable[[bytes], bytes], last_kept: bool
) -> None:
    spool = Spool(tmp_path)
    spool.append(payloads(9))
    spool.append([LAST])
    journal = spool.current()
    assert journal is not None
    segment = next(journal.directory.glob("*.seg"))
    spool.close()
    segment.write_bytes(damage(segment.read_bytes()))
    (orphan,) = Spool(tmp_path).orphans()
    assert read_all(orphan) == payloads(9) + ([LAST] if last_kept else [])
    # Appends after recovery land after the valid data, never after the garbage.
    orphan.append([b"after"])
    assert read_all(orphan) == [*payloads(9), *([LAST] if last_kept else []), b"after"]
    orphan.close()


def test_a_full_spool_refuses_the_whole_append_and_says_why(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000)
    spool.append(payloads(20))
    journal = spool.current()
    assert journal is not None
    before = journal.pending_bytes()
    with pytest.raises(SpoolFullError) as caught:
        spool.append(payloads(20))
    message = str(caught.value)
    assert str(journal.directory) in message and "1,000" in message
    assert journal.pending_bytes() == before
    assert read_all(journal) == payloads(20)
    journal.ack(journal.end)  # delivery frees room
    spool.append(payloads(20, 20))
    assert read_all(journal) == payloads(20, 20)
    spool.close()


def test_the_ack_survives_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=200)
    spool.append(payloads(30))
    journal = spool.current()
    assert journal is not None
    journal.ack(journal.read(journal.acked, 25, 10**9)[-1].end)
    spool.close()
    (orphan,) = Spool(tmp_path, segment_bytes=200).orphans()
    assert read_all(orphan) == payloads(5, 25)
    assert orphan.acked > Position(1, 0)
    orphan.close()


@pytest.mark.parametrize("fsync", ["always", "interval", "never"])
def test_every_fsync_policy_keeps_what_was_appended(tmp_path: Path, fsync: str) -> None:
    spool = Spool(tmp_path, fsync=fsync, segment_bytes=300)  # type: ignore[arg-type]
    for n in range(20):
        spool.append(payloads(1, n))
    spool.close()
    (orphan,) = Spool(tmp_path).orphans()
    assert read_all(orphan) == payloads(20)
    orphan.close()


def test_bad_options_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync must be one of always, interval, never"):
        Spool(tmp_path, fsync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_bytes"):
        Spool(tmp_path, max_bytes=0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.lists(st.binary(max_size=120), min_size=1, max_size=8)),
            st.tuples(st.just("ack"), st.integers(min_value=0, max_value=12)),
            st.tuples(st.just("restart"), st.none()),
        ),
        max_size=40,
    )
)
def test_appends_acks_and_restarts_keep_exactly_the_undelivered_entries_in_order(
    operations: list[tuple[str, object]],
) -> None:
    """A model check: whatever the mix of appends, partial acknowledgements and restarts
    (the journal reopened as an orphan), reading gives exactly what was appended and not yet
    acknowledged, in order."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        spool = Spool(root, segment_bytes=256)
        journal = spool.journal
        pending: list[bytes] = []
        for kind, argument in operations:
            if kind == "append":
                assert isinstance(argument, list)
                journal.append(argument)
                pending.extend(argument)
            elif kind == "ack":
                assert isinstance(argument, int)
                entries = journal.read(journal.acked, argument, 10**9) if argument else []
                if entries:
                    journal.ack(entries[-1].end)
                del pending[: len(entries)]
            else:
                journal.close()
                adopted = Spool(root, segment_bytes=256).orphans()
                if not adopted:  # a drained journal may be gone: start a new one
                    assert not pending
                    spool = Spool(root, segment_bytes=256)
                    journal = spool.journal
                else:
                    (journal,) = adopted
            assert read_all(journal) == pending
        journal.close()
