"""New-device logins, the whole feature: which devices each user has logged in from, the
cookie that identifies a device, and the record of a login from a new one.

A device is identified by the id the application gives it or, by default, by a long-lived
random cookie the middleware sets on the first login response that lacks one. A user's first
device is their baseline and is not reported; every later unknown device is
(``user.new_device_logged_in``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Container
from pathlib import Path

from auditwire.builder import RecordBuilder
from auditwire.capture.facts import REQUEST_ID, RequestFacts
from auditwire.capture.options import KnownDevices
from auditwire.record import AuditRecord, DeviceInfo

__all__ = [
    "DEVICES_SCHEMA",
    "NEW_DEVICE_ACTION",
    "DeviceRegistry",
    "device_cookie_header",
    "new_device_login",
]

NEW_DEVICE_ACTION = "user.new_device_logged_in"
#: Two years: a device keeps its id as long as a browser keeps a cookie.
_COOKIE_ATTRIBUTES = "; Path=/; Max-Age=63072000; HttpOnly; SameSite=Lax"

DEVICES_SCHEMA = """
CREATE TABLE IF NOT EXISTS known_devices (
    tenant TEXT NOT NULL DEFAULT '',
    user_key TEXT NOT NULL,
    device_id TEXT NOT NULL,
    first_seen TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (tenant, user_key, device_id)
);
"""


class DeviceRegistry:
    """Known (user, device) pairs in SQLite (a file shared by workers, or ``":memory:"``)."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        with self._lock:
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(DEVICES_SCHEMA)

    def is_new(self, user_key: str, device_id: str, tenant: str | None = None) -> bool:
        """Remember the pair; ``True`` when the user had other devices but not this one."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                known = self._conn.execute(
                    "SELECT device_id = ? FROM known_devices WHERE tenant = ? AND user_key = ?",
                    (device_id, tenant or "", user_key),
                ).fetchall()
                if any(same for (same,) in known):
                    new = False
                else:
                    self._conn.execute(
                        "INSERT INTO known_devices (tenant, user_key, device_id) VALUES (?, ?, ?)",
                        (tenant or "", user_key, device_id),
                    )
                    new = bool(known)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return new

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def device_cookie_header(
    facts: RequestFacts, cookie: str, *, secure: bool
) -> tuple[bytes, bytes] | None:
    """On a login response: note the device id on the facts, and return the ``Set-Cookie``
    header that gives a new device its id (``None`` when the device already has one)."""
    if facts.device_id is not None:
        return None
    known = facts.cookie(cookie)
    if known and REQUEST_ID.match(known):
        facts.device_id = known
        return None
    facts.device_id = os.urandom(16).hex()
    value = f"{cookie}={facts.device_id}{_COOKIE_ATTRIBUTES}{'; Secure' if secure else ''}"
    return b"set-cookie", value.encode("latin-1")


def new_device_login(
    builder: RecordBuilder,
    registry: KnownDevices,
    login_actions: Container[str],
    record: AuditRecord,
    device_id: str | None,
) -> AuditRecord | None:
    """The ``user.new_device_logged_in`` record when ``record`` is a successful login from a
    device its user has not used before (after their first), else ``None``."""
    if record.action not in login_actions or record.outcome != "success" or device_id is None:
        return None
    user_key = record.actor.id or record.actor.email
    if user_key is None or not registry.is_new(user_key, device_id, record.tenant):
        return None
    device = record.device or DeviceInfo(id=device_id)
    return builder.build(
        NEW_DEVICE_ACTION,
        actor=record.actor,
        target={"type": "user", "id": record.actor.id, "email": record.actor.email},
        metadata={
            "deviceId": device_id,
            "ipAddress": record.ip_address,
            "browser": device.browser,
            "os": device.os,
        },
        ip_address=record.ip_address,
        user_agent=record.user_agent,
        tenant=record.tenant,
        timestamp=record.timestamp,
        request=record.request,
        trace=record.trace,
        device=device,
    )
