"""Time-sortable record ids.

Ids are ULIDs (48-bit millisecond time + 80 random bits, Crockford base32) behind a ``log_``
prefix, as in the identity product's ``log_abc123xyz``. Sorting ids sorts records by creation
time, which gives queries a stable tie-breaker; within one millisecond the random part is
incremented so ids made by one process stay strictly increasing.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time

PREFIX = "log_"
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1
ID_PATTERN = re.compile(r"^log_[0-9A-HJKMNP-TV-Z]{26}$")

_lock = threading.Lock()
#: Ids need uniqueness, not secrecy; a private generator (reseeded in forked children) is
#: several times cheaper than ``os.urandom`` per id.
_rng = random.Random()
_last_ms = -1
_last_random = 0


#: Every 10-bit value as two base32 characters: encoding a 130-bit id takes 13 lookups.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


_SHIFTS = tuple(range(120, -1, -10))  # 13 ten-bit groups of a 130-bit value, high first


def _encode(value: int) -> str:
    """Crockford base32 of a 128-bit ``value`` in 26 characters (two leading zero bits)."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def new_id(now_ms: int | None = None) -> str:
    """Return a new id, strictly greater than the previous one made by this process."""
    global _last_ms, _last_random
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    with _lock:
        if ms <= _last_ms and _last_random < _RANDOM_MAX:
            ms = _last_ms
            rand = _last_random + 1
        else:
            rand = _rng.getrandbits(_RANDOM_BITS)
        _last_ms, _last_random = ms, rand
    return PREFIX + _encode((ms << _RANDOM_BITS) | rand)


def id_timestamp_ms(record_id: str) -> int:
    """The creation time in milliseconds that an id carries."""
    value = 0
    for char in record_id[len(PREFIX) : len(PREFIX) + 10]:
        value = value * 32 + _ALPHABET.index(char)
    return value


def after_fork() -> None:
    """Forget the monotonic state so a forked child does not share its parent's sequence."""
    global _last_ms, _last_random
    _last_ms, _last_random = -1, 0
    _rng.seed()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=after_fork)
