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

__all__ = ["ES_SORT", "FIELDS", "SQL_ORDER", "ip_key", "ip_key_range", "to_elasticsearch", "to_sql"]


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
