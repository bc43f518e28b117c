"""The counts behind the charts, from query parameters: a listing's filters (either product's
vocabulary) plus ``interval`` (``minute``, ``hour``, ``day``; by default the finest that draws
the date range in at most :data:`~auditwire.aggregation.MAX_BUCKETS` buckets), ``top`` (fields
whose most frequent values to count, repeated or comma-separated) and ``size`` (how many of
each, 10 by default).

The answer is JSON-ready: the timeline (non-empty buckets, oldest first, each with its count
per outcome) and each field's top values; ``meta.total`` is the timeline's sum, every record the
filters match.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from auditwire._time import utcnow
from auditwire.aggregation import MAX_TOP, TOP_FIELDS, check_interval, interval_for
from auditwire.errors import InvalidQueryError
from auditwire.listing.params import param_items, parse_list_request
from auditwire.query import AuditQuery

if TYPE_CHECKING:
    from auditwire.stores.base import Store

__all__ = ["CHART_PARAMETERS", "DEFAULT_TOP", "ChartsRequest", "aggregate", "parse_charts_request"]

CHART_PARAMETERS = ("interval", "top", "size")
DEFAULT_TOP = 10


@dataclass(frozen=True, slots=True)
class ChartsRequest:
    """A validated request for counts: the filters, the timeline's interval, the fields to
    count the top values of, and how many."""

    query: AuditQuery
    interval: str
    fields: tuple[str, ...]
    size: int


def parse_charts_request(
    params: Any, *, tenant: str | None = None, now: datetime | None = None
) -> ChartsRequest:
    """Validate query parameters into a request for counts; errors name the parameter."""
    query = parse_list_request(params, tenant=tenant, ignore=CHART_PARAMETERS).query
    chosen: dict[str, list[str]] = {}
    for key, value in param_items(params):
        name = key[:-2] if key.endswith("[]") else key
        if name in CHART_PARAMETERS:
            if not isinstance(value, str):
                raise InvalidQueryError(name, "must be a string")
            chosen.setdefault(name, []).extend(part.strip() for part in value.split(","))
    for name in ("interval", "size"):
        if len(chosen.get(name, [])) > 1:
            raise InvalidQueryError(name, "is given more than once")
    if "interval" in chosen:
        interval = chosen["interval"][0]
        check_interval(interval)
    elif query.start is not None:
        interval = interval_for(query.start, query.end or now or utcnow())
    else:
        interval = "day"
    fields = tuple(dict.fromkeys(chosen.get("top", [])))
    for field in fields:
        if field not in TOP_FIELDS:
            raise InvalidQueryError("top", f"{field!r} is not one of {', '.join(TOP_FIELDS)}")
    size = DEFAULT_TOP
    if "size" in chosen:
        text = chosen["size"][0]
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_TOP:
            raise InvalidQueryError("size", f"must be an integer between 1 and {MAX_TOP}")
        size = int(text)
    return ChartsRequest(query, interval, fields, size)


def aggregate(
    store: Store, params: Any, *, tenant: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """One call for an API handler: query parameters in, the counts as JSON-ready data out."""
    wanted = parse_charts_request(params, tenant=tenant, now=now)
    timeline = store.timeline(wanted.query, wanted.interval)
    return {
        "data": {
            "timeline": {
                "interval": wanted.interval,
                "buckets": [bucket.to_api() for bucket in timeline],
            },
            "top": {
                field: [value.to_api() for value in store.top(wanted.query, field, wanted.size)]
                for field in wanted.fields
            },
        },
        "meta": {"total": sum(bucket.total for bucket in timeline)},
    }
