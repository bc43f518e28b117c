"""An :class:`~auditwire.query.AuditQuery` in each store's language, side by side.

Translating is a pure function per store, so unit tests compare the produced Elasticsearch
body or SQL directly and integration tests run the same query against both stores. User values
only ever become ``term``/``terms``/``range`` values or SQL parameters — never query-string
syntax or SQL text.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from datetime import datetime, timezone
from typing import Any

from auditwire._time import format_timestamp
from auditwire.aggregation import TimeBucket, TopValue, check_interval, check_top
from auditwire.query import AuditQuery

__all__ = [
    "ES_SORT",
    "FIELDS",
    "SQL_ORDER",
    "TOP_COLUMNS",
    "es_network",
    "from_es_timeline",
    "from_es_top",
    "from_sql_timeline",
    "from_sql_top",
    "ip_key",
    "ip_key_ranges",
    "timeline_to_elasticsearch",
    "timeline_to_sql",
    "to_elasticsearch",
    "to_sql",
    "top_to_elasticsearch",
    "top_to_sql",
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
    """A ``WHERE`` clause (possibly empty) and its parameters for the SQLite store.

    With a date range, the filters on other columns are written ``+column``: SQLite then
    reads the range from a time index (which covers the columns filtered and counted) rather
    than every record of, say, an action over all time from that column's index — it cannot
    tell without statistics that the range is the narrower."""
    clauses: list[str] = []
    params: list[Any] = []
    ranged = query.start is not None
    for name, (_, column) in FIELDS.items():
        values = getattr(query, name)
        if values:
            clauses.append(f"{'+' if ranged else ''}{column} IN ({', '.join('?' * len(values))})")
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


# -- aggregations ---------------------------------------------------------------------------

#: A countable field → (Elasticsearch field, SQL expression). An address is counted by its
#: 16-byte IPv6 form, as Elasticsearch's ``ip`` type holds it — so both spellings of an IPv4
#: address are one value, and ties order the same way in both stores.
_MAPPED_HEX = f"{_MAPPED_BASE:032x}"[:24]
TOP_COLUMNS: dict[str, tuple[str, str]] = {
    "action": ("event.action", "action"),
    "category": ("auditwire.category", "category"),
    "outcome": ("auditwire.outcome", "outcome"),
    "actor_id": ("user.id", "actor_id"),
    "actor_email": ("user.email", "actor_email"),
    "target_type": ("auditwire.target.type", "target_type"),
    "target_id": ("auditwire.target.id", "target_id"),
    "tenant": ("organization.id", "tenant"),
    # Not a column: read from the record, which only the charts of requests ask for.
    "http_status": ("http.response.status_code", "json_extract(record, '$.request.status')"),
    "source_ip": (
        "source.ip",
        f"CASE WHEN substr(ip_key, 1, 1) = '4' THEN '{_MAPPED_HEX}' || substr(ip_key, 3) "
        "ELSE substr(ip_key, 3) END",
    ),
}
#: How much of the timestamp text names its bucket (fixed-width ISO 8601, UTC).
_SQL_BUCKET = {"minute": 16, "hour": 13, "day": 10}
_ES_INTERVAL = {"minute": "1m", "hour": "1h", "day": "1d"}


def _unpaged(query: AuditQuery) -> AuditQuery:
    """Counts cover every record the query matches, not the page a cursor continues from."""
    return dataclasses.replace(query, after=None) if query.after is not None else query


def timeline_to_elasticsearch(query: AuditQuery, interval: str) -> dict[str, Any]:
    """A ``date_histogram`` of fixed buckets (epoch-aligned, UTC), each split by outcome."""
    check_interval(interval)
    return {
        "query": to_elasticsearch(_unpaged(query))["query"],
        "size": 0,
        "aggs": {
            "timeline": {
                "date_histogram": {
                    "field": "@timestamp",
                    "fixed_interval": _ES_INTERVAL[interval],
                    "min_doc_count": 1,
                },
                "aggs": {"outcome": {"terms": {"field": "auditwire.outcome", "size": 10}}},
            }
        },
    }


def from_es_timeline(response: dict[str, Any]) -> list[TimeBucket]:
    return [
        TimeBucket(
            datetime.fromtimestamp(bucket["key"] / 1000, timezone.utc),
            {b["key"]: b["doc_count"] for b in bucket["outcome"]["buckets"]},
        )
        for bucket in _buckets(response, "timeline")
    ]


def _buckets(response: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """An aggregation's buckets; none when no index exists yet (the cluster then answers
    without aggregations)."""
    buckets: list[dict[str, Any]] = (
        response.get("aggregations", {}).get(name, {}).get("buckets", [])
    )
    return buckets


def top_to_elasticsearch(query: AuditQuery, field: str, size: int) -> dict[str, Any]:
    """A ``terms`` aggregation, most frequent first. Each monthly index is a shard, so the
    shards are asked for many more terms than shown (``shard_size``): the counts are exact
    unless a month holds more distinct values than that."""
    check_top(field, size)
    return {
        "query": to_elasticsearch(_unpaged(query))["query"],
        "size": 0,
        "aggs": {
            "top": {
                "terms": {
                    "field": TOP_COLUMNS[field][0],
                    "size": size,
                    "shard_size": max(1000, size * 20),
                }
            }
        },
    }


def from_es_top(response: dict[str, Any]) -> list[TopValue]:
    return [
        TopValue(str(bucket["key"]), int(bucket["doc_count"]))
        for bucket in _buckets(response, "top")
    ]


def timeline_to_sql(query: AuditQuery, interval: str) -> tuple[str, list[Any]]:
    """``(bucket, outcome, count)`` rows, the bucket as the prefix of the timestamp text."""
    check_interval(interval)
    where, params = to_sql(_unpaged(query))
    width = _SQL_BUCKET[interval]
    sql = (
        f"SELECT substr(timestamp, 1, {width}) AS bucket, outcome, COUNT(*) "
        f"FROM audit_records {where} GROUP BY bucket, outcome ORDER BY bucket"
    )
    return sql, params


def from_sql_timeline(rows: list[tuple[str, str, int]], interval: str) -> list[TimeBucket]:
    pad = {"minute": ":00", "hour": ":00:00", "day": "T00:00:00"}[interval]
    buckets: dict[str, dict[str, int]] = {}
    for bucket, outcome, count in rows:
        buckets.setdefault(bucket, {})[outcome] = int(count)
    return [
        TimeBucket(datetime.fromisoformat(prefix + pad).replace(tzinfo=timezone.utc), counts)
        for prefix, counts in buckets.items()
    ]


def top_to_sql(query: AuditQuery, field: str, size: int) -> tuple[str, list[Any]]:
    """``(value, count)`` rows, most frequent first, ties in Elasticsearch's order."""
    check_top(field, size)
    where, params = to_sql(_unpaged(query))
    column = TOP_COLUMNS[field][1]
    # ``+column``: an expression, not the column, so that SQLite reads the date range from
    # the time index (which covers the counted columns) instead of walking the whole index
    # of the counted column to group by it.
    value = f"+{column}" if field != "source_ip" else column
    present = f"{value} IS NOT NULL" if field != "source_ip" else "+ip_key IS NOT NULL"
    where = f"{where} AND {present}" if where else f"WHERE {present}"
    sql = (
        f"SELECT {value} AS value, COUNT(*) AS n FROM audit_records {where} "
        "GROUP BY value ORDER BY n DESC, value LIMIT ?"
    )
    return sql, [*params, size]


def from_sql_top(rows: list[tuple[str, int]], field: str) -> list[TopValue]:
    if field != "source_ip":
        return [TopValue(str(value), int(count)) for value, count in rows]
    return [TopValue(_address(value), int(count)) for value, count in rows]


def _address(key: str) -> str:
    """An address from its 16-byte hex form, IPv4 written as IPv4 (as Elasticsearch does)."""
    if key.startswith(_MAPPED_HEX):
        return str(ipaddress.IPv4Address(int(key[24:], 16)))
    return str(ipaddress.IPv6Address(int(key, 16)))
