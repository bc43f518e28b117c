"""Counting failures in background threads without flooding the logs.

A store that is down fails every batch; logging each would bury the application's own logs.
Every failure is counted and remembered; at most one line per interval is logged, saying how
many were not.
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = [
    "LOG_EVERY",
    "FailureLog",
]

logger = logging.getLogger("auditwire")
#: At most one failure log line per this many seconds.
LOG_EVERY = 5.0


class FailureLog:
    def __init__(self, every: float = LOG_EVERY) -> None:
        self.every = every
        self.count = 0
        self.last_error: str | None = None
        self._last_logged = float("-inf")
        self._unlogged = 0
        self._lock = threading.Lock()

    def note(self, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.count += 1
            self.last_error = message
            if now - self._last_logged < self.every:
                self._unlogged += 1
                return
            unlogged, self._unlogged, self._last_logged = self._unlogged, 0, now
        suffix = f" ({unlogged} more failure(s) since the last report)" if unlogged else ""
        logger.error("auditwire: %s%s", message, suffix)
