"""An :class:`~auditwire.query.AuditQuery` in each store's language, side by side.

Translating is a pure function per store, so unit tests compare the produced Elasticsearch
body or SQL directly and integration tests run the same query against both stores. User values
only ever become ``term``/``terms``/``range`` values or SQL parameters — never query-string
syntax or SQL text.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from auditwire._time import format_timestamp
from auditwire.query import AuditQuery

__all__ = [
    "ES_SORT",
    "FIELDS",
    "SQL_ORDER",
    "es_network",
    "ip_key",
    "ip_key_ranges",
    "to_elasticsearch",
    "to_sql",
]

#: IPv4 addresses written the IPv6 way (``::ffff:192.0.2.1``). An address is one point
#: whichever way it is written, as Elasticsearch's ``ip`` type holds it: a network of either
#: family matches it in both spellings, and so every CIDR filter gets one answer everywhere.
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_MAPPED_BASE = int(_MAPPED.network_address)


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
        filters.append({"terms": {"source.ip": [es_network(n) for n in query.source_ips]}})
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
            for low, high in ip_key_ranges(network):
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


def es_network(network: str) -> str:
    """A network as Elasticsearch takes it: an IPv6 network inside ``::ffff:0:0/96`` is
    refused there as ambiguous, so it is written as the IPv4 network it is."""
    parsed = ipaddress.ip_network(network, strict=False)
    if isinstance(parsed, ipaddress.IPv6Network) and parsed.subnet_of(_MAPPED):
        low = int(parsed.network_address) - _MAPPED_BASE
        return str(ipaddress.IPv4Network((low, parsed.prefixlen - 96)))
    return str(parsed)


def _key(version: int, value: int) -> str:
    return f"{version}:{value:0{8 if version == 4 else 32}x}"


def ip_key_ranges(network: str) -> list[tuple[str, str]]:
    """The ``ip_key`` ranges a network covers: its own, and the other spelling of the IPv4
    addresses in it (IPv4-mapped IPv6 keys for an IPv4 network; IPv4 keys for the part of an
    IPv6 network inside ``::ffff:0:0/96``)."""
    parsed = ipaddress.ip_network(network, strict=False)
    low, high = int(parsed.network_address), int(parsed.broadcast_address)
    ranges = [(_key(parsed.version, low), _key(parsed.version, high))]
    if parsed.version == 4:
        ranges.append((_key(6, _MAPPED_BASE + low), _key(6, _MAPPED_BASE + high)))
    else:
        mapped_high = int(_MAPPED.broadcast_address)
        if low <= mapped_high and high >= _MAPPED_BASE:  # one holds the other
            first, last = max(low, _MAPPED_BASE), min(high, mapped_high)
            ranges.append((_key(4, first - _MAPPED_BASE), _key(4, last - _MAPPED_BASE)))
    return ranges
