"""The index template that owns every field of an audit document.

Kept free of any client import: the template is data (a plain dict) that tests compare with
ECS's field list, that ``auditwire setup`` installs, and that users can print and install with
their own tooling. The mapping is ``dynamic: strict``: a document field without a mapping is
refused loudly instead of being guessed at, so dashboards and queries can rely on the types.

Write targets are time partitions named by the record's own timestamp
(``auditwire-events-2024.01``), not by the time of writing. A retried write therefore lands in
the same index and its ``create`` with the record id is refused as a duplicate: exactly-once
without a lookup. One read pattern
(``auditwire-events-*``) covers every partition.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Literal

from auditwire.ecs import SCHEMA_VERSION

__all__ = [
    "DEFAULT_PREFIX",
    "TYPE_FALLBACKS",
    "Partitioning",
    "data_stream_name",
    "index_template",
    "mappings",
    "partition_end",
    "partition_start",
    "read_pattern",
    "substitute_types",
    "write_index",
]

#: Dated indices by the record's own time (``day``, ``month``: the default, ``year``), or one
#: data stream (``data_stream``, where the cluster has them: see ``SetupResult.data_streams``).
Partitioning = Literal["day", "month", "year", "data_stream"]
DEFAULT_PREFIX = "auditwire-events"
_FORMATS = {"day": "%Y.%m.%d", "month": "%Y.%m", "year": "%Y"}


@lru_cache(maxsize=1024)
def _dated(year: int, month: int = 0, day: int = 0) -> str:
    """A partition's date part: formatting numbers cost three times the cache's lookup, and
    records written together share their partition."""
    if not month:
        return f"{year:04d}"
    return f"{year:04d}.{month:02d}" if not day else f"{year:04d}.{month:02d}.{day:02d}"


#: The same names without ``strftime``: every record's way out names its partition.
_NAMES: dict[str, Callable[[datetime], str]] = {
    "day": lambda t: _dated(t.year, t.month, t.day),
    "month": lambda t: _dated(t.year, t.month),
    "year": lambda t: _dated(t.year),
}

#: Field types that need an Elasticsearch module a minimal distribution may lack, and the core
#: type that replaces each one there. Queries behave the same on both.
#: Core types standing in for those a cluster lacks: minimal Elasticsearch distributions lack
#: the modules of the first two; OpenSearch calls its flattened type ``flat_object``.
TYPE_FALLBACKS = {"match_only_text": "text", "wildcard": "keyword", "flattened": "flat_object"}
#: Fallbacks that take no parameters of the type they replace.
_BARE_FALLBACKS = frozenset({"flat_object"})

_K = {"type": "keyword", "ignore_above": 1024}


def _keywords(*names: str) -> dict[str, Any]:
    return {name: dict(_K) for name in names}


def mappings() -> dict[str, Any]:
    """The mapping of an audit document (see :func:`auditwire.ecs.to_ecs`)."""
    return {
        "dynamic": "strict",
        "_meta": {"auditwire_schema_version": SCHEMA_VERSION},
        "properties": {
            "@timestamp": {"type": "date"},
            "ecs": {"properties": _keywords("version")},
            "message": {"type": "match_only_text"},
            "event": {
                "properties": {
                    **_keywords(
                        "id", "kind", "module", "dataset", "action", "category", "type", "outcome"
                    ),
                    "duration": {"type": "long"},
                }
            },
            "user": {
                "properties": {
                    **_keywords("id", "email", "name"),
                    "target": {"properties": _keywords("id", "email", "name")},
                }
            },
            "source": {"properties": {"ip": {"type": "ip"}}},
            "client": {"properties": {"ip": {"type": "ip"}}},
            "user_agent": {
                "properties": {
                    "original": {**_K, "fields": {"text": {"type": "match_only_text"}}},
                    **_keywords("name", "version"),
                    "os": {"properties": _keywords("name", "version")},
                    "device": {"properties": _keywords("name")},
                }
            },
            "device": {"properties": _keywords("id")},
            "http": {
                "properties": {
                    "request": {"properties": _keywords("id", "method")},
                    "response": {"properties": {"status_code": {"type": "long"}}},
                }
            },
            "url": {"properties": {"path": {"type": "wildcard"}}},
            "trace": {"properties": _keywords("id")},
            "span": {"properties": _keywords("id")},
            "organization": {"properties": _keywords("id")},
            "related": {"properties": {"ip": {"type": "ip"}, "user": dict(_K)}},
            "auditwire": {
                "properties": {
                    "schema_version": {"type": "integer"},
                    **_keywords("category", "outcome"),
                    "actor": {"properties": _keywords("type")},
                    "target": {"properties": _keywords("type", "id", "email", "name")},
                    "metadata": {"type": "flattened", "ignore_above": 1024},
                    "request": {"properties": {"route": dict(_K), "peer_ip": {"type": "ip"}}},
                    "integrity": {
                        "properties": {
                            **_keywords("origin", "writer", "prev", "hash"),
                            "seq": {"type": "long"},
                        }
                    },
                }
            },
        },
    }


def substitute_types(mapping: Any, unsupported: set[str]) -> Any:
    """A copy of ``mapping`` with each unsupported field type replaced by its fallback."""
    if isinstance(mapping, dict):
        out = {key: substitute_types(value, unsupported) for key, value in mapping.items()}
        if isinstance(out.get("type"), str) and out["type"] in unsupported:
            fallback = TYPE_FALLBACKS[out["type"]]
            return {"type": fallback} if fallback in _BARE_FALLBACKS else {**out, "type": fallback}
        return out
    return mapping


def index_template(
    prefix: str = DEFAULT_PREFIX,
    *,
    shards: int = 1,
    replicas: str | int = "0-1",
    unsupported_types: set[str] | frozenset[str] = frozenset(),
    data_stream: bool = False,
) -> dict[str, Any]:
    """The body of ``PUT _index_template/<prefix>``: for the dated indices, or for the data
    stream ``<prefix>-stream`` (``data_stream=True``).

    ``replicas`` accepts a count or an ``auto_expand_replicas`` range; the default ``"0-1"``
    keeps a single-node cluster green and adds a replica as soon as a second node joins.
    """
    replica_settings: dict[str, Any] = (
        {"auto_expand_replicas": replicas}
        if isinstance(replicas, str)
        else {"number_of_replicas": replicas}
    )
    stream: dict[str, Any] = {"data_stream": {}} if data_stream else {}
    return {
        "index_patterns": [data_stream_name(prefix) if data_stream else read_pattern(prefix)],
        **stream,
        "priority": 200,
        "_meta": {"managed_by": "auditwire", "schema_version": SCHEMA_VERSION},
        "template": {
            "settings": {"index": {"number_of_shards": shards, **replica_settings}},
            "mappings": substitute_types(mappings(), set(unsupported_types)),
        },
    }


def read_pattern(prefix: str = DEFAULT_PREFIX) -> str:
    """The index pattern that covers every partition (for searches and Kibana data views)."""
    return f"{prefix}-*"


def data_stream_name(prefix: str = DEFAULT_PREFIX) -> str:
    """The data stream of ``partitioning="data_stream"`` (inside the read pattern)."""
    return f"{prefix}-stream"


def write_index(prefix: str, timestamp: datetime, partitioning: Partitioning = "month") -> str:
    """The partition a record with this timestamp is written to."""
    if partitioning == "data_stream":
        return data_stream_name(prefix)
    return f"{prefix}-{_NAMES[partitioning](timestamp)}"


def partition_start(
    prefix: str, index: str, partitioning: Partitioning = "month"
) -> datetime | None:
    """The start of the period index ``index`` holds, ``None`` if it is not a partition."""
    if not index.startswith(f"{prefix}-") or partitioning not in _FORMATS:
        return None
    try:
        start = datetime.strptime(index[len(prefix) + 1 :], _FORMATS[partitioning])
    except ValueError:
        return None
    return start.replace(tzinfo=timezone.utc)


def partition_end(start: datetime, partitioning: Partitioning = "month") -> datetime:
    """The start of the next period."""
    if partitioning == "day":
        return start + timedelta(days=1)
    if partitioning == "year":
        return start.replace(year=start.year + 1)
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
