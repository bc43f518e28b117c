"""The canonical bytes of a record: what a digest of it covers.

A record is hashed where it is made and checked where it is read back — from SQLite, from
Elasticsearch or OpenSearch, after the spool — so its bytes must not depend on the road it
took. They are its API form (:meth:`~auditwire.record.AuditRecord.to_api`: timestamps as
fixed-width UTC text in milliseconds, absent parts left out) as JSON with sorted keys, no
whitespace, text as UTF-8 rather than escapes, and no NaN or infinity (which JSON cannot carry
and the record refuses). Numbers are written as Python writes them, the shortest text that
reads back to the same float, so a float survives every store's round trip unchanged; the
suite proves it for generated records through SQLite, Elasticsearch and OpenSearch.

The standard library's encoder defines the bytes. orjson, when installed (every cluster extra
brings it), writes the same bytes ten times faster, except for floats below 1e-4 — Python
writes ``1e-05`` and ``1.5e-07``, orjson ``0.00001`` and ``1.5e-7`` — and integers beyond 64
bits, which it refuses. Its output is used only when it cannot hold such a float: text with
neither ``e-`` nor ``0.0000`` in it (a string that happens to contain them merely takes the
slower road). A test compares both roads on generated values and on the floats at the edges.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from auditwire.record import AuditRecord

__all__ = ["canonical_json", "canonical_record", "parse_json", "record_bytes", "standard_json"]

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def standard_json(value: Any) -> bytes:
    """``value`` as canonical JSON, written by the standard library (the definition)."""
    return _ENCODER.encode(value).encode("utf-8")


def _fast_roads() -> tuple[Callable[[Any], bytes], Callable[[dict[str, Any]], bytes]] | None:
    try:
        import orjson
    except ImportError:
        return None
    dumps, sort_keys = orjson.dumps, orjson.OPT_SORT_KEYS

    def fast(value: Any) -> bytes:
        try:
            out = dumps(value, option=sort_keys)
        except TypeError:  # an integer beyond 64 bits
            return standard_json(value)
        if b"e-" in out or b"0.0000" in out:
            return standard_json(value)
        return out

    def record(api: dict[str, Any]) -> bytes:
        # Searching the output costs a third of writing it; a record without metadata has
        # nothing to search for (see canonical_record).
        return fast(api) if api["metadata"] else dumps(api, option=sort_keys)

    return fast, record


_roads = _fast_roads()
#: ``value`` as canonical JSON bytes (see the module for the two roads to them).
canonical_json: Callable[[Any], bytes] = standard_json if _roads is None else _roads[0]
#: :func:`canonical_json` of the API form of a record this process made. Such a form holds
#: floats only in its metadata and its request's duration (rounded to 0.001, which both roads
#: write alike), and integers within 64 bits outside its metadata (the record refuses larger
#: ones), so without metadata orjson's output is used as it is. Forms read back from a store
#: go through :func:`canonical_json`.
canonical_record: Callable[[dict[str, Any]], bytes] = standard_json if _roads is None else _roads[1]


def _parser() -> Callable[[str | bytes], Any]:
    try:
        import orjson
    except ImportError:
        return json.loads
    loads, refused = orjson.loads, orjson.JSONDecodeError

    def parse(text: str | bytes) -> Any:
        try:
            return loads(text)
        except refused:  # integers beyond 64 bits; the standard library reads them
            return json.loads(text)

    return parse


#: JSON text to values, through orjson when installed (four times faster): verification
#: parses every stored record.
parse_json: Callable[[str | bytes], Any] = _parser()


def record_bytes(record: AuditRecord) -> bytes:
    """The canonical bytes of a record (its API form)."""
    return canonical_json(record.to_api())
