"""A day in the security log of a small SaaS team, on the embedded default store.

Records a realistic mix of events (sign-ups, invitations, failed logins, API-key rotations,
webhook changes...) with :class:`auditwire.AuditLog`, then reads them back through queries, as
an admin page or the ``/security_logs`` API would.

    python examples/demo.py [path/to/audit.db]

Without a path the records go to a fresh SQLite file in a temporary directory.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from auditwire import Actor, AuditLog, AuditRecord, Target

START = datetime(2024, 1, 15, 9, 0, tzinfo=timezone.utc)
ALICE = Actor(type="user", id="usr_1", email="alice@acme.test", name="Alice")
BOB = Actor(type="user", id="usr_2", email="bob@acme.test", name="Bob")
CI_KEY = Actor(type="agent", id="key_ci", name="CI deploy key")
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 Version/17.2 Safari"


def record_day(log: AuditLog) -> int:
    """One morning of activity; returns how many records were written."""
    events: list[tuple[int, str, dict[str, Any]]] = [
        (0, "user.signed_up", {"actor": ALICE, "target": Target("user", "usr_1", ALICE.email)}),
        (
            5,
            "user.invited",
            {
                "actor": ALICE,
                "target": Target("user", "usr_2", BOB.email),
                "ip_address": "203.0.113.45",
            },
        ),
        (12, "user.signed_up", {"actor": BOB, "target": Target("user", "usr_2", BOB.email)}),
        (
            14,
            "user.role_edited",
            {
                "actor": ALICE,
                "target": Target("user", "usr_2", BOB.email),
                "metadata": {"role": {"name": "Finance"}},
            },
        ),
        (
            20,
            "api_key.created",
            {
                "actor": ALICE,
                "target": Target("api_key", "key_ci", name="CI deploy key"),
                "metadata": {"apiKey": "sk_live_51HxExampleKey1337"},
            },
        ),
        (
            31,
            "login_failed",
            {
                "actor": Actor(type="user", email="bob@acme.test"),
                "outcome": "failure",
                "ip_address": "198.51.100.7",
                "user_agent": BROWSER,
                "metadata": {"reason": "wrong_password", "password": "hunter2"},
            },
        ),
        (
            32,
            "login_failed",
            {
                "actor": Actor(type="user", email="bob@acme.test"),
                "outcome": "failure",
                "ip_address": "198.51.100.7",
                "user_agent": BROWSER,
                "metadata": {"reason": "wrong_password"},
            },
        ),
        (
            33,
            "login",
            {"actor": BOB, "ip_address": "2001:db8::17", "user_agent": BROWSER},
        ),
        (
            40,
            "webhook_endpoint.created",
            {
                "actor": BOB,
                "target": Target(
                    "webhook_endpoint", "we_1", name="https://hooks.acme.test/billing"
                ),
                "metadata": {"url": "https://hooks.acme.test/billing", "events": ["invoice.paid"]},
            },
        ),
        (
            55,
            "api_key.rotated",
            {
                "actor": ALICE,
                "target": Target("api_key", "key_ci", name="CI deploy key"),
                "metadata": {"apiKey": "sk_live_51HxRotatedKey4242"},
            },
        ),
        (
            61,
            "access_denied",
            {
                "actor": CI_KEY,
                "target": Target("setting", "billing", name="billing settings"),
                "outcome": "failure",
            },
        ),
        (70, "export.created", {"actor": BOB, "metadata": {"export_type": "invoices"}}),
    ]
    for minutes, action, fields in events:
        log.record(action, timestamp=START + timedelta(minutes=minutes), **fields)
    return len(events)


def show(title: str, records: list[AuditRecord]) -> None:
    print(f"\n{title} ({len(records)})")
    for r in records:
        who = r.actor.email or r.actor.name or r.actor.id
        print(
            f"  {r.timestamp:%H:%M}  {r.action:<26} {r.outcome:<8} {who:<16} "
            f"{r.ip_address or '-':<15} {r.message}"
        )


def main(argv: list[str]) -> None:
    path = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp()) / "audit.db"
    with AuditLog(f"sqlite:///{path}") as log:
        count = record_day(log)
        print(f"recorded {count} audit events in {path}")
        show("Security log, newest first", log.search(limit=20))
        show("Failed logins", log.search(actions=["login_failed"], outcomes=["failure"]))
        show("API key events", log.search(categories=["api_key"]))
        show("What Alice did", log.search(actor_emails=["alice@acme.test"]))
        rotated = log.search(actions=["api_key.rotated"])[0]
        print("\nOne record as the API returns it:")
        for key, value in rotated.to_api().items():
            if value not in (None, {}):
                print(f"  {key}: {value}")


if __name__ == "__main__":
    main(sys.argv)
