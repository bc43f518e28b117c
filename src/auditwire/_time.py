"""Record time: UTC at millisecond precision, and its one text form.

Millisecond precision is what an Elasticsearch ``date`` keeps, so both stores order records
identically; the text form has a fixed width and a ``Z``, so text order is time order (the
SQLite store sorts on it). Records made together mostly share their millisecond, so the last
datetime made and the last text formatted are reused rather than computed again.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from auditwire.errors import InvalidRecordError

__all__ = [
    "format_timestamp",
    "normalise_timestamp",
    "parse_timestamp",
    "utc_from_ms",
    "utcnow",
]


def normalise_timestamp(value: datetime, path: str = "timestamp") -> datetime:
    """UTC, millisecond precision; a naive datetime is refused rather than guessed at."""
    if type(value) is datetime and value.tzinfo is timezone.utc and not value.microsecond % 1000:
        return value
    if not isinstance(value, datetime):
        raise InvalidRecordError(path, f"must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRecordError(path, "must be timezone-aware (naive datetimes are ambiguous)")
    try:
        value = value.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
        raise InvalidRecordError(path, f"{value.isoformat()} has no UTC time") from None
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


#: ``.000Z`` to ``.999Z``: the millisecond part of every formatted time.
_MILLISECONDS = tuple(f".{n:03d}Z" for n in range(1000))
#: The last second formatted (seconds since the epoch) and its text up to the second: records
#: made together share their second, and ``isoformat`` costs three times what this does.
_last_second: tuple[float, str] = (float("nan"), "")


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``: fixed width, so text order is time order."""
    global _last_second
    if value.tzinfo is timezone.utc:  # every record's
        second = value.timestamp() // 1
        last, text = _last_second
        if second != last:
            text = value.isoformat(timespec="seconds")[:-6]
            _last_second = (second, text)
        return text + _MILLISECONDS[value.microsecond // 1000]
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_timestamp(value: object, path: str = "timestamp") -> datetime:
    """Read an ISO 8601 timestamp written by :func:`format_timestamp` or by another producer."""
    if isinstance(value, datetime):
        return normalise_timestamp(value, path)
    if not isinstance(value, str):
        raise InvalidRecordError(path, f"must be an ISO 8601 string, not {type(value).__name__}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRecordError(path, f"{value!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise InvalidRecordError(path, f"{value!r} has no time zone")
    return normalise_timestamp(parsed, path)


#: The last millisecond made a datetime, and that datetime (immutable: records share it).
_last_moment: tuple[int, datetime] = (-1, datetime.min.replace(tzinfo=timezone.utc))


def utc_from_ms(ms: int) -> datetime:
    """The UTC datetime of a millisecond since the epoch, at record precision. Records made
    together mostly share their millisecond, so the last one is reused."""
    global _last_moment
    last_ms, moment = _last_moment
    if ms != last_ms:
        moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
        _last_moment = (ms, moment)
    return moment


def utcnow() -> datetime:
    """Now, already at record precision (so normalising it is a no-op)."""
    return utc_from_ms(time.time_ns() // 1_000_000)
