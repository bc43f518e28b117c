"""The canonical bytes of a record: what a digest of it covers.

A record is hashed where it is made and checked where it is read back — from SQLite, from
Elasticsearch or OpenSearch, after the spool — so its bytes must not depend on the road it
took. They are its API form (:meth:`~auditwire.record.AuditRecord.to_api`: timestamps as
fixed-width UTC text in milliseconds, absent parts left out) as JSON with sorted keys, no
whitespace, text as UTF-8 rather than escapes, and no NaN or infinity (which JSON cannot carry
and the record refuses). Numbers are written as Python writes them, the shortest text that
reads back to the same float, so a float survives every store's round trip unchanged; the
suite proves it for generated records through SQLite, Elasticsearch and OpenSearch.
"""

from __future__ import annotations

import json
from typing import Any

from auditwire.record import AuditRecord

__all__ = ["canonical_json", "record_bytes"]


def canonical_json(value: Any) -> bytes:
    """``value`` as canonical JSON bytes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def record_bytes(record: AuditRecord) -> bytes:
    """The canonical bytes of a record (its API form)."""
    return canonical_json(record.to_api())
