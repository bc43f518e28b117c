"""Filters over audit records, and their translation for each store.

A query is plain data; translating it is a pure function per store, so unit tests compare the
produced Elasticsearch body or SQL directly and integration tests run the same query against
both stores. User values only ever become ``term``/``terms``/``range`` values or SQL
parameters — never query-string syntax or SQL text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auditwire.errors import InvalidQueryError
from auditwire.record import OUTCOMES, format_timestamp, normalise_timestamp

MAX_VALUES = 100
MAX_LIMIT = 1000


def _values(name: str, values: Iterable[str] | str | None) -> tuple[str, ...]:
    if values is None:
        return ()
    items = (values,) if isinstance(values, str) else tuple(values)
    if len(items) > MAX_VALUES:
        raise InvalidQueryError(name, f"at most {MAX_VALUES} values, got {len(items)}")
    for item in items:
        if not isinstance(item, str) or not item or len(item) > 320:
            raise InvalidQueryError(name, f"{item!r} is not a non-empty string of <= 320 chars")
    return items


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which records to return; every filter is optional and they all combine (AND).

    Multi-valued filters match any of their values. ``start`` is inclusive and ``end``
    exclusive, so consecutive ranges never count a record twice.
    """

    actions: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    actor_ids: tuple[str, ...] = ()
    actor_emails: tuple[str, ...] = ()
    target_ids: tuple[str, ...] = ()
    target_types: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    tenant: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        for name in (
            "actions",
            "categories",
            "actor_ids",
            "actor_emails",
            "target_ids",
            "target_types",
            "outcomes",
        ):
            object.__setattr__(self, name, _values(name, getattr(self, name)))
        for outcome in self.outcomes:
            if outcome not in OUTCOMES:
                raise InvalidQueryError(
                    "outcomes", f"{outcome!r} is not one of {', '.join(OUTCOMES)}"
                )
        if self.tenant is not None:
            _values("tenant", self.tenant)
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None:
                try:
                    object.__setattr__(self, name, normalise_timestamp(value, name))
                except ValueError as exc:
                    raise InvalidQueryError(name, str(exc)) from None
        if self.start is not None and self.end is not None and self.start > self.end:
            raise InvalidQueryError("start", "is after end")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            raise InvalidQueryError("limit", "must be an integer")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidQueryError("limit", f"must be between 1 and {MAX_LIMIT}")


#: Query field → (Elasticsearch field, SQL column).
FIELDS: dict[str, tuple[str, str]] = {
    "actions": ("event.action", "action"),
    "categories": ("auditwire.category", "category"),
    "actor_ids": ("user.id", "actor_id"),
    "actor_emails": ("user.email", "actor_email"),
    "target_ids": ("auditwire.target.id", "target_id"),
    "target_types": ("auditwire.target.type", "target_type"),
    "outcomes": ("auditwire.outcome", "outcome"),
}
#: Newest first; the id breaks ties between records of the same millisecond.
ES_SORT: list[dict[str, str]] = [{"@timestamp": "desc"}, {"event.id": "desc"}]
SQL_ORDER = "timestamp DESC, id DESC"


def to_elasticsearch(query: AuditQuery) -> dict[str, Any]:
    """The search body (``query``, ``sort``, ``size``) for an audit index pattern."""
    filters: list[dict[str, Any]] = []
    for name, (es_field, _) in FIELDS.items():
        values = getattr(query, name)
        if values:
            filters.append({"terms": {es_field: list(values)}})
    if query.tenant is not None:
        filters.append({"term": {"organization.id": query.tenant}})
    if query.start is not None or query.end is not None:
        bounds: dict[str, str] = {}
        if query.start is not None:
            bounds["gte"] = format_timestamp(query.start)
        if query.end is not None:
            bounds["lt"] = format_timestamp(query.end)
        filters.append({"range": {"@timestamp": bounds}})
    return {
        "query": {"bool": {"filter": filters}},
        "sort": ES_SORT,
        "size": query.limit,
        "track_total_hits": True,
    }


def to_sql(query: AuditQuery) -> tuple[str, list[Any]]:
    """A ``WHERE`` clause (possibly empty) and its parameters for the SQLite store."""
    clauses: list[str] = []
    params: list[Any] = []
    for name, (_, column) in FIELDS.items():
        values = getattr(query, name)
        if values:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    if query.tenant is not None:
        clauses.append("tenant = ?")
        params.append(query.tenant)
    if query.start is not None:
        clauses.append("timestamp >= ?")
        params.append(format_timestamp(query.start))
    if query.end is not None:
        clauses.append("timestamp < ?")
        params.append(format_timestamp(query.end))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params
