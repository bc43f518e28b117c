"""The viewer's record page says whether the record verifies, in a real Chromium: vouched
for by a signed checkpoint, sealed but not yet vouched for, or edited behind the store's
back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from auditwire import Actor, AuditLog
from auditwire.integrity import Integrity, IntegrityKey, Keyring
from tests.listing.test_viewer_browser import create_app, no_axe_violations, viewer
from tests.support.servers import in_thread


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, AuditLog, Path]]:
    path = tmp_path / "audit.db"
    ring = Keyring([IntegrityKey.hmac("the viewer's secret key", "k1")])
    log = AuditLog(f"sqlite:///{path}", integrity=Integrity(keyring=ring, interval=3600))
    for n in range(3):
        log.record("login", actor=Actor(id=f"usr_{n}"), tenant="acme")
    log.sealer.checkpoint()
    log.record("login", actor=Actor(id="usr_late"), tenant="acme")
    with in_thread(create_app(log)) as base:
        yield base, log, path
    log.close()


def _status(page: Page, base: str, record_id: str) -> str:
    page.goto(viewer(base).replace("/viewer", f"/viewer/{record_id}"))
    return page.locator("#integrity").inner_text()


def test_the_record_page_says_whether_the_record_verifies(
    served: tuple[str, AuditLog, Path], page: Page
) -> None:
    base, log, path = served
    by_actor = {r.actor.id: r for r in log.search(actions=("login",), limit=100)}

    vouched = _status(page, base, by_actor["usr_1"].id)
    assert vouched == "✓ Verified: Vouched for by the checkpoint at 5, signed " + vouched[-25:]
    assert vouched.endswith("Z.")
    no_axe_violations(page)
    assert _status(page, base, by_actor["usr_late"].id) == (
        "Sealed: Sealed and linked; no checkpoint vouches for it yet."
    )

    conn = sqlite3.connect(path)
    conn.executescript("DROP TRIGGER audit_records_no_update;")
    conn.execute(
        "UPDATE audit_records SET record = replace(record, '\"usr_1\"', '\"usr_9\"') WHERE id = ?",
        (by_actor["usr_1"].id,),
    )
    conn.commit()
    assert _status(page, base, by_actor["usr_1"].id) == (
        "✗ Does not verify: Its seal does not hold: its content does not match its hash."
    )
    # Its neighbour is intact, but the chain through the edited record no longer holds.
    assert _status(page, base, by_actor["usr_0"].id) == (
        "✗ Does not verify: The chain after it breaks at record 3 of its writer."
    )
    no_axe_violations(page)
