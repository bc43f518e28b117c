"""Damage on disk loses only what was damaged, and says so: a matrix of what can happen to a
journal left behind by a stopped process — flipped bytes, truncation, garbage, a damaged or
missing position file, a missing lock, a deleted segment, a file that cannot be read, a spool
that cannot be written — each replayed by the next process."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from auditwire import AuditLog
from auditwire.delivery.spool import Journal, Spool, SpoolUnusableError
from auditwire.stores.elasticsearch import ElasticsearchStore

ROOT = Path(__file__).resolve().parents[2]
COUNT = 30


def payloads() -> list[bytes]:
    return [f"audit document number {i:05d} ........".encode() for i in range(COUNT)]


#: Frames of 52 bytes (a 16-byte header), 4 to a segment of at most 200 bytes.
FRAME = 16 + len(payloads()[0])


def left_behind(root: Path, *, acked: int = 0) -> Path:
    """A journal of COUNT entries, the first ``acked`` delivered, its process gone."""
    spool = Spool(root, segment_bytes=200)
    for payload in payloads():
        spool.append([payload])
    journal = spool.current()
    assert journal is not None
    if acked:
        journal.ack(journal.read(journal.acked, acked, 10**9)[-1].end)
    directory = journal.directory
    journal.close()  # not drained: it stays for the next process
    return directory


def replayed(root: Path) -> tuple[list[bytes], Spool]:
    spool = Spool(root, segment_bytes=200)
    (orphan,) = spool.orphans()
    entries = [e.payload for e in orphan.read(orphan.acked, 10**9, 10**12)]
    orphan.close()
    return entries, spool


def segment(directory: Path, number: int) -> Path:
    return directory / f"{number:08d}.seg"


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def without(*lost: int) -> list[bytes]:
    return [p for i, p in enumerate(payloads()) if i not in lost]


# Entry 6 is the third frame of segment 2 (entries 4..7): offset 2 * FRAME there.
@pytest.mark.parametrize(
    ("where", "offset"),
    [("length", 0), ("crc", 5), ("time", 10), ("payload", 16 + 20), ("payload end", FRAME - 1)],
)
def test_a_flipped_byte_loses_its_frame_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str, offset: int
) -> None:
    directory = left_behind(tmp_path)
    flip(segment(directory, 2), 2 * FRAME + offset)
    entries, spool = replayed(tmp_path)
    assert entries == without(6), where
    assert spool.damaged == 1
    (line,) = [r.getMessage() for r in caplog.records if "damage" in r.getMessage()]
    assert f"offset {2 * FRAME}" in line and str(segment(directory, 2)) in line


def test_damage_in_the_last_segment_keeps_what_follows_it(tmp_path: Path) -> None:
    directory = left_behind(tmp_path)
    last = max(directory.glob("*.seg"))
    flip(last, 0)  # the first of its two frames
    entries, spool = replayed(tmp_path)
    assert entries == without(28)
    assert spool.damaged == 1


def test_a_segment_cut_short_loses_only_what_was_cut(tmp_path: Path) -> None:
    directory = left_behind(tmp_path)
    path = segment(directory, 3)
    path.write_bytes(path.read_bytes()[: 2 * FRAME + 20])  # entries 10, 11 cut
    entries, _ = replayed(tmp_path)
    assert entries == without(10, 11)


@pytest.mark.parametrize("number", [2, 8], ids=["middle", "last"])
def test_garbage_appended_loses_nothing(tmp_path: Path, number: int) -> None:
    directory = left_behind(tmp_path)
    with segment(directory, number).open("ab") as file:
        file.write(os.urandom(300))
    entries, _ = replayed(tmp_path)
    assert entries == payloads()


@pytest.mark.parametrize(
    ("damage", "reported"),
    [
        pytest.param(lambda p: p.write_bytes(os.urandom(20)), True, id="random-bytes"),
        pytest.param(lambda p: flip(p, 3), True, id="flipped-offset"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:7]), True, id="torn"),
        # As after a crash before the first delivery: nothing to report, everything sent.
        pytest.param(lambda p: p.unlink(), False, id="missing"),
    ],
)
def test_a_bad_position_file_deletes_nothing(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path], None],
    reported: bool,
) -> None:
    directory = left_behind(tmp_path, acked=10)  # segments 1 and 2 delivered and deleted
    damage(directory / "acked")
    entries, _ = replayed(tmp_path)
    # Nothing undelivered is lost; what is sent again the store refuses as a duplicate.
    assert entries[-20:] == payloads()[10:]
    assert set(entries) <= set(payloads())
    assert sorted(directory.glob("*.seg"))[0] == segment(directory, 3)
    messages = [r.getMessage() for r in caplog.records]
    assert any("position file" in m and "damaged" in m for m in messages) == reported


def test_a_position_past_the_data_is_not_believed(tmp_path: Path) -> None:
    directory = left_behind(tmp_path)
    (directory / "acked").write_bytes((99).to_bytes(8, "little") + (0).to_bytes(8, "little"))
    entries, _ = replayed(tmp_path)
    assert entries == payloads()  # an 0.1 position file (no CRC) pointing nowhere
    assert len(list(directory.glob("*.seg"))) == 8


def test_a_journal_without_its_lock_file_is_adopted_once_its_process_is_gone(
    tmp_path: Path,
) -> None:
    directory = left_behind(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    orphan = directory.with_name(directory.name.rpartition("-")[0] + f"-{gone.stdout.strip()}")
    directory.rename(orphan)
    (orphan / "lock").unlink()
    entries, _ = replayed(tmp_path)
    assert entries == payloads()


def test_a_journal_without_its_lock_file_is_left_to_its_living_owner(tmp_path: Path) -> None:
    directory = left_behind(tmp_path)  # named after this process, which runs
    (directory / "lock").unlink()
    assert Spool(tmp_path).orphans() == []


def test_a_deleted_segment_is_reported_and_the_rest_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = left_behind(tmp_path)
    segment(directory, 4).unlink()
    entries, _ = replayed(tmp_path)
    assert entries == without(12, 13, 14, 15)
    assert any("segment(s) 4" in r.getMessage() and "missing" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_a_segment_that_is_a_directory_is_skipped_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = left_behind(tmp_path)
    segment(directory, 5).unlink()
    segment(directory, 5).mkdir()
    entries, _ = replayed(tmp_path)
    assert entries == without(16, 17, 18, 19)
    assert any("is not a file" in r.getMessage() for r in caplog.records)


def test_an_append_in_a_live_journal_after_damage_is_read(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=10**6)
    spool.append(payloads()[:5])
    journal = spool.current()
    assert journal is not None
    flip(segment(journal.directory, 1), 2 * FRAME + 20)  # damaged under the running process
    spool.append(payloads()[5:])
    assert [e.payload for e in journal.read(journal.acked, 10**9, 10**12)] == without(2)
    assert spool.damaged == 1
    spool.close()


def test_a_spool_that_is_not_a_directory_leaves_the_application_running(
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "spool"
    blocked.write_text("not a directory")
    log = AuditLog(ElasticsearchStore("http://127.0.0.1:9"), spool=blocked)  # starts
    with pytest.raises(SpoolUnusableError) as caught:
        log.record("login", actor={"id": "u1"})
    assert str(blocked) in str(caught.value) and "$AUDITWIRE_SPOOL" in str(caught.value)
    assert log.flush(timeout=1) is False
    assert str(blocked) in (log.stats().last_error or "")
    log.close()


UNPRIVILEGED = """
import sys
from auditwire import AuditLog
from auditwire.delivery import Delivery
from auditwire.delivery.spool import SpoolUnusableError


class Nowhere:  # a destination needing no client library: the system Python runs this
    spool_name = "nowhere"

    def encode(self, record):
        return record.id.encode()

    def send(self, payloads):
        raise OSError("not sent in this test")

    def write(self, records):
        pass

    def close(self):
        pass


log = AuditLog(Delivery(Nowhere(), sys.argv[1]))
try:
    log.record("login", actor={"id": "u1"})
except SpoolUnusableError as exc:
    print("refused:", exc)
print("flush:", log.flush(timeout=1))
print("error:", log.stats().last_error)
"""


@pytest.mark.parametrize("mode", [0o555, 0o000], ids=["read-only", "unreadable"])
def test_a_spool_the_user_cannot_use_leaves_the_application_running(mode: int) -> None:
    """Run by an unprivileged user (root reads and writes anything), with the system's
    Python 3 (the project's may live where that user cannot reach)."""
    base = Path(tempfile.mkdtemp(prefix="auditwire-spool-"))
    try:
        base.chmod(0o755)
        spool = base / "spool"
        left_behind(spool)
        spool.chmod(mode)
        as_root = os.geteuid() == 0
        done = subprocess.run(
            [
                "/usr/bin/python3" if as_root else sys.executable,
                "-c",
                textwrap.dedent(UNPRIVILEGED),
                str(spool),
            ],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(ROOT / "src"), "PATH": os.environ.get("PATH", "")},
            timeout=60,
            user=65534 if as_root else None,
            group=65534 if as_root else None,
        )
    finally:
        (base / "spool").chmod(0o755)
        shutil.rmtree(base)
    assert done.returncode == 0, done.stderr
    assert f"refused: the audit spool {spool} cannot be used" in done.stdout
    assert "flush: False" in done.stdout
    assert f"error: the audit spool {spool}" in done.stdout


def test_each_damaged_frame_is_counted_in_the_logs_stats(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "auditwire")
    directory = left_behind(tmp_path)
    flip(segment(directory, 2), 5)
    flip(segment(directory, 4), FRAME + 5)
    spool = Spool(tmp_path, segment_bytes=200)
    (orphan,) = spool.orphans()
    assert isinstance(orphan, Journal)
    assert len(orphan.read(orphan.acked, 10**9, 10**12)) == COUNT - 2
    assert spool.damaged == 2
    orphan.close()
