"""Filters over audit records, and their translation for each store.

A query is plain data; translating it is a pure function per store, so unit tests compare the
produced Elasticsearch body or SQL directly and integration tests run the same query against
both stores. User values only ever become ``term``/``terms``/``range`` values or SQL
parameters — never query-string syntax or SQL text.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auditwire._ids import ID_PATTERN
from auditwire.errors import InvalidQueryError
from auditwire.record import (
    OUTCOMES,
    AuditRecord,
    format_timestamp,
    normalise_timestamp,
    parse_timestamp,
)

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


def _network(value: str) -> str:
    """An address or CIDR network in canonical text (a single address as /32 or /128)."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise InvalidQueryError(
            "source_ips", f"{value!r} is not an IP address or network"
        ) from None


@dataclass(frozen=True, slots=True)
class Position:
    """Where a newest-first listing stands: the last record's timestamp and id."""

    timestamp: datetime
    id: str

    def encode(self) -> str:
        """An opaque cursor for APIs."""
        raw = f"{format_timestamp(self.timestamp)}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str, parameter: str = "cursor") -> Position:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            stamp, record_id = raw.split("|")
            timestamp = parse_timestamp(stamp)
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise InvalidQueryError(parameter, "is not a cursor this API issued") from None
        if not ID_PATTERN.match(record_id):
            raise InvalidQueryError(parameter, "is not a cursor this API issued")
        return cls(timestamp, record_id)

    @classmethod
    def of(cls, record: AuditRecord) -> Position:
        return cls(record.timestamp, record.id)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing: the records, and what a dashboard needs to page through."""

    records: list[AuditRecord]
    total: int
    page: int
    per_page: int

    @property
    def total_pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def next_cursor(self) -> str | None:
        """A cursor continuing after this page (``None`` on the last one)."""
        if not self.records or self.page * self.per_page >= self.total:
            return None
        return Position.of(self.records[-1]).encode()


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which records to return; every filter is optional and they all combine (AND).

    Multi-valued filters match any of their values. ``users`` matches the actor's id or email
    (the billing product's "User" filter); ``source_ips`` takes addresses and CIDR networks.
    ``start`` is inclusive and ``end`` exclusive, so consecutive ranges never count a record
    twice. ``after`` continues a listing after a position (keyset paging: stable while new
    records arrive).
    """

    actions: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    actor_ids: tuple[str, ...] = ()
    actor_emails: tuple[str, ...] = ()
    target_ids: tuple[str, ...] = ()
    target_types: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    source_ips: tuple[str, ...] = ()
    tenant: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 50
    after: Position | None = None

    def __post_init__(self) -> None:
        for name in (
            "actions",
            "categories",
            "actor_ids",
            "actor_emails",
            "target_ids",
            "target_types",
            "outcomes",
            "users",
            "source_ips",
        ):
            object.__setattr__(self, name, _values(name, getattr(self, name)))
        object.__setattr__(self, "source_ips", tuple(_network(ip) for ip in self.source_ips))
        if self.after is not None and not isinstance(self.after, Position):
            raise InvalidQueryError("after", "must be a Position (decode cursors with Position)")
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
    if query.users:
        users = list(query.users)
        filters.append(
            {
                "bool": {
                    "should": [{"terms": {"user.id": users}}, {"terms": {"user.email": users}}],
                    "minimum_should_match": 1,
                }
            }
        )
    if query.source_ips:
        filters.append({"terms": {"source.ip": list(query.source_ips)}})
    if query.tenant is not None:
        filters.append({"term": {"organization.id": query.tenant}})
    if query.start is not None or query.end is not None:
        bounds: dict[str, str] = {}
        if query.start is not None:
            bounds["gte"] = format_timestamp(query.start)
        if query.end is not None:
            bounds["lt"] = format_timestamp(query.end)
        filters.append({"range": {"@timestamp": bounds}})
    body: dict[str, Any] = {
        "query": {"bool": {"filter": filters}},
        "sort": ES_SORT,
        "size": query.limit,
        "track_total_hits": True,
    }
    if query.after is not None:
        millis = round(query.after.timestamp.timestamp() * 1000)
        body["search_after"] = [millis, query.after.id]
    return body


def to_sql(query: AuditQuery) -> tuple[str, list[Any]]:
    """A ``WHERE`` clause (possibly empty) and its parameters for the SQLite store."""
    clauses: list[str] = []
    params: list[Any] = []
    for name, (_, column) in FIELDS.items():
        values = getattr(query, name)
        if values:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    if query.users:
        marks = ", ".join("?" * len(query.users))
        clauses.append(f"(actor_id IN ({marks}) OR actor_email IN ({marks}))")
        params.extend([*query.users, *query.users])
    if query.source_ips:
        ranges = []
        for network in query.source_ips:
            low, high = ip_key_range(network)
            ranges.append("ip_key BETWEEN ? AND ?")
            params.extend([low, high])
        clauses.append(f"({' OR '.join(ranges)})")
    if query.tenant is not None:
        clauses.append("tenant = ?")
        params.append(query.tenant)
    if query.start is not None:
        clauses.append("timestamp >= ?")
        params.append(format_timestamp(query.start))
    if query.end is not None:
        clauses.append("timestamp < ?")
        params.append(format_timestamp(query.end))
    if query.after is not None:
        # A row-value comparison: SQLite walks the (timestamp, id) index from the position.
        clauses.append("(timestamp, id) < (?, ?)")
        params.extend([format_timestamp(query.after.timestamp), query.after.id])
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def ip_key(address: str | None) -> str | None:
    """A text key that sorts addresses numerically within their family (``4:`` + 8 hex digits,
    ``6:`` + 32), so CIDR filters become range conditions in SQL."""
    if address is None:
        return None
    parsed = ipaddress.ip_address(address)
    return f"{parsed.version}:{int(parsed):0{parsed.max_prefixlen // 4}x}"


def ip_key_range(network: str) -> tuple[str, str]:
    parsed = ipaddress.ip_network(network, strict=False)
    width = parsed.max_prefixlen // 4
    low = int(parsed.network_address)
    high = int(parsed.broadcast_address)
    return f"{parsed.version}:{low:0{width}x}", f"{parsed.version}:{high:0{width}x}"
