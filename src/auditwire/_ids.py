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
from collections.abc import Callable

from auditwire._native import NATIVE

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


#: Every 10-bit value as two base32 characters: an id is 13 lookups.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


def _encode_time(ms: int) -> str:
    """The first 10 characters of an id: its 48-bit millisecond time (two leading zero bits)."""
    p = _PAIRS
    return (
        p[ms >> 40 & 1023] + p[ms >> 30 & 1023] + p[ms >> 20 & 1023] + p[ms >> 10 & 1023]
        + p[ms & 1023]
    )  # fmt: skip


def _encode_random_head(high: int) -> str:
    """The first 14 of an id's 16 random characters: its 80 random bits without the last 10.
    Written out, not looped: a comprehension costs as much again."""
    p = _PAIRS
    return (
        p[high >> 60 & 1023] + p[high >> 50 & 1023] + p[high >> 40 & 1023]
        + p[high >> 30 & 1023] + p[high >> 20 & 1023] + p[high >> 10 & 1023] + p[high & 1023]
    )  # fmt: skip


#: The time part of the last id, and the head of its random part: ids made in one millisecond
#: share the first, and count up from one random start, so they mostly share the second.
_time_part: tuple[int, str] = (-1, "")
_random_head: tuple[int, str] = (-1, "")


def spell(ms: int, rand: int) -> str:
    """The id of time ``ms`` and random part ``rand`` (the definition; see :data:`_spelled`)."""
    global _time_part, _random_head
    cached_ms, text = _time_part
    if cached_ms != ms:
        text = _encode_time(ms)
        _time_part = (ms, text)
    high = rand >> 10
    cached_high, head = _random_head
    if cached_high != high:
        head = _encode_random_head(high)
        _random_head = (high, head)
    return PREFIX + text + head + _PAIRS[rand & 1023]


#: :func:`spell`, by the native encoder when installed (see :mod:`auditwire._native`):
#: :func:`new_id` then costs 6k instructions instead of 21k in a new millisecond, as most
#: requests are.
_spelled: Callable[[int, int], str] = spell if NATIVE is None else NATIVE.record_id


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
    return _spelled(ms, rand)


def random_hex() -> str:
    """128 random bits in hex, for request ids: unique, not secret. From the same private
    generator, because ``os.urandom`` is a system call, and system calls on the request path
    cost far more than their own time on virtual machines (they evict the caches the
    interpreter was running from)."""
    return f"{_rng.getrandbits(128):032x}"


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
