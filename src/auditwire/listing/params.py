"""Query parameters in either product's vocabulary → an :class:`~auditwire.query.AuditQuery`.

The billing product filters by ``from``, ``to``, ``users``, ``log_types`` and ``log_events``
(the last three multi-select); the identity product by ``action``, ``category``, ``actorId``,
``targetId``, ``outcome``, ``startDate`` and ``endDate``. Both are accepted, and combine, with
auditwire's own (``targetType``, ``actorEmail``, ``sourceIp``). Multi-valued parameters take
repeated keys (``users=a&users=b``, ``users[]=a``) or commas (``users=a,b``).

Dates are ISO 8601; without a time zone they are UTC. A date without a time means the whole
day: ``from=2024-01-15`` starts at its midnight, ``to=2024-01-15`` ends at the next one.
Every error names the parameter as the caller spelt it; unknown parameters are errors too
(a typo must not silently widen an audit query).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any

from auditwire.errors import InvalidQueryError
from auditwire.query import MAX_LIMIT, AuditQuery, Cursor

if TYPE_CHECKING:
    from auditwire.stores.base import Store

__all__ = [
    "DEFAULT_PER_PAGE",
    "MAX_PAGE",
    "PAGING",
    "SUMMARY_CHARS",
    "SUMMARY_KEYS",
    "SUMMARY_VALUES",
    "UNNAMED",
    "VOCABULARY",
    "ListRequest",
    "filters_summary",
    "list_records",
    "param_items",
    "parse_list_request",
]

#: Parameter spellings → AuditQuery field (multi-valued fields are tuples there).
VOCABULARY: dict[str, str] = {
    # the billing product's Security logs
    "from": "start",
    "to": "end",
    "users": "users",
    "log_types": "categories",
    "log_events": "actions",
    # the identity product's Audit logs
    "action": "actions",
    "category": "categories",
    "actorId": "actor_ids",
    "targetId": "target_ids",
    "outcome": "outcomes",
    "startDate": "start",
    "endDate": "end",
    # auditwire's own
    "actions": "actions",
    "categories": "categories",
    "actorEmail": "actor_emails",
    "targetType": "target_types",
    "outcomes": "outcomes",
    "sourceIp": "source_ips",
}
PAGING = ("page", "per_page", "perPage", "cursor")
#: How an error names a parameter that has no name (``?=x``, ``?[]=x``).
UNNAMED = "(unnamed)"
DEFAULT_PER_PAGE = 20
MAX_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class ListRequest:
    """A validated listing request: the query (with ``limit`` = the page size) and the page
    number, or a cursor position in the query's ``after``."""

    query: AuditQuery
    page: int
    cursor: bool


def param_items(params: Any) -> list[tuple[str, str]]:
    """Key/value pairs of query parameters, repeated keys kept: Starlette's ``QueryParams``,
    Werkzeug's ``MultiDict``, Django's ``QueryDict``, a plain mapping of strings or lists, or a
    sequence of pairs."""
    if isinstance(params, (list, tuple)):  # (key, value) pairs, as for urlencode
        return [(str(key), value) for key, value in params]
    if hasattr(params, "multi_items"):
        return list(params.multi_items())
    if hasattr(params, "getlist"):
        return [(key, value) for key in params for value in params.getlist(key)]
    if isinstance(params, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, value in params.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            pairs.extend((key, v) for v in values)
        return pairs
    raise TypeError(f"query parameters must be a mapping, not {type(params).__name__}")


#: The dates a listing reads: a day's end, or a zone's offset, must still be a date.
_EARLIEST = datetime(1, 1, 2, tzinfo=timezone.utc)
_LATEST = datetime(9999, 12, 31, tzinfo=timezone.utc)


def _moment(name: str, text: str, *, end: bool) -> datetime:
    """A date (the whole day: its start, or for an end the next midnight) or a date-time (UTC
    when it names no zone), in ISO 8601's extended or basic form."""
    text = text.strip()
    moment: datetime | None
    try:
        if "T" not in text and " " not in text:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time(0), timezone.utc)
            if end:
                moment += timedelta(days=1)
        else:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
            moment = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
            moment = moment.astimezone(timezone.utc)
    except ValueError:
        raise InvalidQueryError(name, f"{text!r} is not an ISO 8601 date or date-time") from None
    except OverflowError:  # the day after 9999-12-31, or a zone's offset past either end
        moment = None
    if moment is None or not _EARLIEST <= moment <= _LATEST:
        raise InvalidQueryError(
            name, f"{text!r} is outside the dates this API reads (0001-01-02 to 9999-12-30)"
        )
    return moment


def _integer(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidQueryError(name, f"{text!r} is not an integer") from None
    if not low <= value <= high:
        raise InvalidQueryError(name, f"must be between {low} and {high}")
    return value


def parse_list_request(
    params: Any,
    *,
    tenant: str | None = None,
    ignore: Iterable[str] = (),
    default_per_page: int = DEFAULT_PER_PAGE,
) -> ListRequest:
    """Validate query parameters into a listing request; ``tenant`` comes from the URL or the
    caller's identity, never from the parameters."""
    ignored = set(ignore)
    values: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    paging: dict[str, str] = {}
    for raw_key, raw_value in param_items(params):
        key = raw_key[:-2] if raw_key.endswith("[]") else raw_key
        if key in ignored:
            continue
        if not isinstance(raw_value, str):
            raise InvalidQueryError(key, "must be a string")
        if key in PAGING:
            if key in paging:
                raise InvalidQueryError(key, "is given more than once")
            paging[key] = raw_value
            continue
        field = VOCABULARY.get(key)
        if field is None:
            if not key:
                raise InvalidQueryError(UNNAMED, "a parameter needs a name")
            raise InvalidQueryError(key, "is not a filter of this API")
        spelling.setdefault(field, key)
        parts = [part.strip() for part in raw_value.split(",")]
        if not all(parts):
            # Dropping it would widen an audit query the caller meant to narrow.
            raise InvalidQueryError(
                key, f"{raw_value!r} has an empty value; leave the parameter out instead"
            )
        values.setdefault(field, []).extend(parts)

    fields: dict[str, Any] = {}
    for field, items in values.items():
        name = spelling[field]
        if field in ("start", "end"):
            if len(items) != 1:
                raise InvalidQueryError(name, "takes exactly one date")
            fields[field] = _moment(name, items[0], end=field == "end")
        else:
            fields[field] = tuple(items)

    per_page_key = "per_page" if "per_page" in paging else "perPage"
    per_page = (
        _integer(per_page_key, paging[per_page_key], 1, MAX_LIMIT)
        if per_page_key in paging
        else default_per_page
    )
    page = _integer("page", paging["page"], 1, MAX_PAGE) if "page" in paging else 1
    after = Cursor.decode(paging["cursor"]) if "cursor" in paging else None
    if after is not None and "page" in paging:
        raise InvalidQueryError("cursor", "and page cannot be combined")
    try:
        query = AuditQuery(**fields, tenant=tenant, limit=per_page, after=after)
    except InvalidQueryError as exc:
        # Report the parameter as the caller spelt it, not the model's field name.
        raise InvalidQueryError(spelling.get(exc.parameter, exc.parameter), exc.problem) from None
    return ListRequest(query=query, page=page, cursor=after is not None)


#: How much of a request's filters the audited read keeps: a hostile request must not make
#: the read's own record too large to store (the read is audited all the same).
SUMMARY_KEYS = 40
SUMMARY_VALUES = 20
SUMMARY_CHARS = 200


def filters_summary(params: Any) -> dict[str, Any]:
    """The filters of a request, bounded for the record of the read: at most
    :data:`SUMMARY_KEYS` parameters of :data:`SUMMARY_VALUES` values of
    :data:`SUMMARY_CHARS` characters each; ``"…truncated": true`` says something was cut."""
    summary: dict[str, Any] = {}
    cut = False
    for key, value in param_items(params):
        text_key = str(key)[:SUMMARY_CHARS]
        if text_key not in summary and len(summary) >= SUMMARY_KEYS:
            cut = True
            continue
        values = summary.setdefault(text_key, [])
        if len(values) >= SUMMARY_VALUES:
            cut = True
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        cut = cut or len(text) > SUMMARY_CHARS or len(str(key)) > SUMMARY_CHARS
        values.append(text[:SUMMARY_CHARS])
    out: dict[str, Any] = {k: v[0] if len(v) == 1 else v for k, v in summary.items()}
    if cut:
        out["…truncated"] = True
    return out


def list_records(
    store: Store,
    params: Any,
    *,
    tenant: str | None = None,
    ignore: Iterable[str] = (),
) -> dict[str, Any]:
    """One call for an API handler in any framework: query parameters in (Flask's
    ``request.args``, Django's ``request.GET``, Starlette's ``request.query_params``), a page
    of records as JSON-ready data out — ``{"data": [...], "meta": {...}}``. Invalid
    parameters raise :class:`~auditwire.errors.InvalidQueryError` (answer it with a 400).

    With ``cursor`` the listing continues after a position and reports no total (deep paging
    and export); otherwise ``page``/``per_page`` come with ``total`` and ``totalPages``.
    """
    request = parse_list_request(params, tenant=tenant, ignore=ignore)
    query = request.query
    meta: dict[str, Any] = {"perPage": query.limit}
    if request.cursor:
        records = store.search(query)
        last = records[-1] if len(records) == query.limit else None
        meta["nextCursor"] = Cursor.of(last).encode() if last is not None else None
    else:
        page = store.page(query, request.page)
        records = page.records
        meta.update(
            page=page.page,
            total=page.total,
            totalPages=page.total_pages,
            nextCursor=page.next_cursor,
        )
    return {"data": [record.to_api() for record in records], "meta": meta}
