"""Export everything a filter matches, as CSV, JSON or NDJSON, in constant memory.

Records are read by cursor in batches and written out batch by batch, so the size of an export
is limited by the client's patience, not by the server's memory. CSV cells that a spreadsheet
would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, their full-width forms
U+FF1D and kin, a tab or a line break) are prefixed with ``'``: an attacker-controlled user
agent must not execute in an auditor's spreadsheet.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, cast

from auditwire._fields import FLAT_FIELDS
from auditwire.errors import InvalidQueryError
from auditwire.listing.params import UNNAMED, parse_list_request
from auditwire.query import AuditQuery, Cursor
from auditwire.record import flat_fields

if TYPE_CHECKING:
    from auditwire.record import AuditRecord
    from auditwire.stores.base import Store

__all__ = [
    "BATCH",
    "CSV_COLUMNS",
    "FORMATS",
    "MAX_EXPORT_BODY",
    "ExportFormat",
    "ExportRequest",
    "csv_row",
    "export",
    "parse_export_request",
    "records",
]

ExportFormat = Literal["csv", "json", "ndjson"]
FORMATS: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
}
BATCH = 1000
#: The record's flat fields, then its metadata as JSON.
CSV_COLUMNS: tuple[str, ...] = (*(name for name, _ in FLAT_FIELDS), "metadata")
#: What makes a spreadsheet read a cell as a formula: the ASCII signs, their full-width forms
#: (spreadsheets in CJK locales take those too) and a leading tab or line break.
_FORMULA_START = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20", "\t", "\r", "\n")


#: The largest export request body read.
MAX_EXPORT_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """A validated export request: the format, the query (the filters, in the listing's
    vocabulary) and the filters as given, for the record of the export."""

    format: ExportFormat
    query: AuditQuery
    filters: dict[str, Any]


def _refuse_constant(name: str) -> Any:
    raise InvalidQueryError("body", f"{name} is not a JSON number")


def _filter_values(key: str, value: object) -> str | list[str]:
    """A filter's value as the listing reads it: a string, an integer (paging), or a list of
    strings. Anything else — ``null`` included — is refused, never searched as its text."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise InvalidQueryError(
        f"filters.{key}", f"must be a string or a list of strings, not {_json_type(value)}"
    )


def _json_type(value: object) -> str:
    names = {type(None): "null", bool: "a boolean", float: "a number", dict: "an object"}
    return names.get(type(value), "a list of other values" if isinstance(value, list) else "that")


def parse_export_request(body: bytes, *, tenant: str | None = None) -> ExportRequest:
    """Validate an export request body, ``{"format": ..., "filters": {...}}``: JSON without
    ``NaN`` or ``Infinity``, bounded in size and depth, every filter a string or strings.
    Errors are :class:`~auditwire.errors.InvalidQueryError` naming the part at fault."""
    if len(body) > MAX_EXPORT_BODY:
        raise InvalidQueryError("body", f"is larger than {MAX_EXPORT_BODY:,} bytes")
    try:
        parsed = json.loads(body or b"{}", parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidQueryError("body", "nests too deep") from None
    except ValueError as exc:
        if isinstance(exc, InvalidQueryError):
            raise
        raise InvalidQueryError("body", "is not JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidQueryError("body", "must be a JSON object")
    unknown = sorted(set(parsed) - {"format", "filters"})
    if unknown:
        raise InvalidQueryError(unknown[0] or UNNAMED, "is not a field of an export request")
    export_format = parsed.get("format", "json")
    if not isinstance(export_format, str) or export_format not in FORMATS:
        raise InvalidQueryError("format", f"must be one of {', '.join(FORMATS)}")
    filters = parsed.get("filters")
    filters = {} if filters is None else filters
    if not isinstance(filters, dict):
        raise InvalidQueryError("filters", "must be an object of filter parameters")
    values = {key: _filter_values(key, value) for key, value in filters.items()}
    query = parse_list_request(values, tenant=tenant).query
    return ExportRequest(cast(ExportFormat, export_format), query, filters)


def records(store: Store, query: AuditQuery, batch: int = BATCH) -> Iterator[AuditRecord]:
    """Every record ``query`` matches, newest first, read ``batch`` at a time by cursor."""
    current = replace(query, limit=batch, after=None)
    while True:
        found = store.search(current)
        yield from found
        if len(found) < batch:
            return
        current = replace(current, after=Cursor.of(found[-1]))


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(record: AuditRecord) -> list[str]:
    """A record as a CSV row of :data:`CSV_COLUMNS`, formula-safe."""
    fields = flat_fields(record)
    metadata = (
        json.dumps(record.metadata, ensure_ascii=False, sort_keys=True) if record.metadata else None
    )
    return [_cell(fields[name]) for name in CSV_COLUMNS[:-1]] + [_cell(metadata)]


def export(
    store: Store, query: AuditQuery, export_format: ExportFormat, batch: int = BATCH
) -> Iterator[str]:
    """The export as text chunks (one per batch of records), for a streamed response."""
    if export_format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {export_format!r}")
    buffer: list[AuditRecord] = []
    first = True
    if export_format == "csv":
        yield ",".join(CSV_COLUMNS) + "\r\n"
    elif export_format == "json":
        yield "["
    for record in records(store, query, batch):
        buffer.append(record)
        if len(buffer) < batch:
            continue
        yield _chunk(buffer, export_format, first)
        first = False
        buffer = []
    if buffer:
        yield _chunk(buffer, export_format, first)
    if export_format == "json":
        yield "]\n"


def _chunk(batch: list[AuditRecord], export_format: str, first: bool) -> str:
    if export_format == "csv":
        out = io.StringIO()
        csv.writer(out).writerows(csv_row(r) for r in batch)
        return out.getvalue()
    lines = [json.dumps(r.to_api(), ensure_ascii=False) for r in batch]
    if export_format == "ndjson":
        return "\n".join(lines) + "\n"
    return ("" if first else ",") + ",".join(lines)
