"""Which devices each user has logged in from, to spot logins from a new one.

A device is identified by the id the application gives it or, by default, by a long-lived
random cookie the middleware sets on the first login response that lacks one. A user's first
device is their baseline and is not reported; every later unknown device is
(``user.new_device_logged_in``).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

SCHEMA = """
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
            self._conn.executescript(SCHEMA)

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
