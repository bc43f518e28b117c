"""Which records are sealed in place and which are copied: the hand-off's own builds are
nobody else's yet and are sealed as they are; a record a caller hands over stays as the caller
holds it (frozen means frozen), and its sealed copy is what is stored."""

from __future__ import annotations

from pathlib import Path

from auditwire import Actor, AuditLog, AuditRecord, SQLiteStore
from auditwire.integrity.verify import verify


def test_a_callers_record_is_copied_and_the_hand_offs_own_are_sealed_in_place(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "audit.db")
    log = AuditLog(store)
    held = log.build("user.login", actor=Actor(id="u1"))
    built: list[AuditRecord] = []

    def deferred() -> list[AuditRecord]:
        built.append(log.build("user.logout", actor=Actor(id="u1")))
        return built[-1:]

    log.submit(held)
    log.submit(deferred)
    log.flush()
    # A batch with a caller's record in it is copied whole.
    assert held.integrity is None and built[0].integrity is None

    log.submit(deferred)  # a batch of builds only
    log.flush()
    assert built[1].integrity is not None and built[1].integrity.seq == 3

    stored = {r.id: r for r in log.search()}
    assert stored[held.id].integrity is not None
    assert stored[built[1].id] == built[1]
    recorded = log.record("user.login", actor=Actor(id="u2"))  # built here: sealed as it is
    assert recorded.integrity is not None and recorded.integrity.seq == 4
    report = verify(store)
    assert report.ok and report.records == 4, report
    log.close()
