"""Counts over audit records, for charts: a timeline by outcome and the top values of a field.

Both take the same :class:`~auditwire.query.AuditQuery` as a listing, so a chart always counts
exactly the records the list beside it shows. Each store translates them its own way
(:mod:`auditwire.stores.translate`: a ``date_histogram`` and ``terms`` aggregations, SQL
``GROUP BY``), and a differential test holds the two to the same buckets.

Time buckets are fixed lengths aligned to the Unix epoch in UTC (a day starts at midnight UTC),
as Elasticsearch's ``fixed_interval`` aligns them; calendar months and weeks are left out, since
their edges depend on a time zone and a convention. Empty buckets are not returned: the chart
fills them (:func:`bucket_starts`). The top values are ordered by count, most first, ties by
value in the order Elasticsearch gives them (bytes of the text; addresses as 16-byte IPv6).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from auditwire.errors import InvalidQueryError
from auditwire.record import OUTCOMES

__all__ = [
    "INTERVALS",
    "MAX_BUCKETS",
    "MAX_TOP",
    "TOP_FIELDS",
    "TimeBucket",
    "TopValue",
    "bucket_start",
    "bucket_starts",
    "check_interval",
    "check_top",
    "interval_for",
]

#: Bucket lengths a timeline takes.
INTERVALS: dict[str, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
#: Fields whose top values can be counted (the query's vocabulary, singular).
TOP_FIELDS = (
    "action",
    "category",
    "outcome",
    "actor_id",
    "actor_email",
    "target_type",
    "target_id",
    "tenant",
    "source_ip",
    "http_status",
)
MAX_TOP = 100
#: The most buckets a chart draws; :func:`interval_for` picks the finest interval within it.
MAX_BUCKETS = 400

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class TimeBucket:
    """The records of one time bucket, ``start`` inclusive, counted by outcome."""

    start: datetime
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_api(self) -> dict[str, object]:
        return {
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "total": self.total,
            "counts": {outcome: self.counts.get(outcome, 0) for outcome in OUTCOMES},
        }


@dataclass(frozen=True, slots=True)
class TopValue:
    """One value of a field and how many records hold it."""

    value: str
    count: int

    def to_api(self) -> dict[str, object]:
        return {"value": self.value, "count": self.count}


def check_interval(interval: str) -> timedelta:
    """The length of a named interval, or :class:`InvalidQueryError` naming the choices."""
    length = INTERVALS.get(interval) if isinstance(interval, str) else None
    if length is None:
        raise InvalidQueryError("interval", f"must be one of {', '.join(INTERVALS)}")
    return length


def check_top(name: str, size: int) -> None:
    """Refuse a field that cannot be counted, or a size out of 1..:data:`MAX_TOP`."""
    if name not in TOP_FIELDS:
        raise InvalidQueryError("field", f"must be one of {', '.join(TOP_FIELDS)}")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_TOP:
        raise InvalidQueryError("size", f"must be an integer between 1 and {MAX_TOP}")


def bucket_start(moment: datetime, interval: str) -> datetime:
    """The start of the bucket that holds ``moment``."""
    length = check_interval(interval)
    return moment - ((moment - _EPOCH) % length)


def interval_for(start: datetime, end: datetime) -> str:
    """The finest interval that spans ``start``..``end`` in at most :data:`MAX_BUCKETS`."""
    for name, length in INTERVALS.items():
        if (end - start) / length <= MAX_BUCKETS:
            return name
    return "day"


def bucket_starts(start: datetime, end: datetime, interval: str) -> Iterator[datetime]:
    """Every bucket's start from the one holding ``start`` to the one before ``end``, for
    charts that draw empty buckets as zero."""
    length = check_interval(interval)
    moment = bucket_start(start, interval)
    while moment < end:
        yield moment
        moment += length
