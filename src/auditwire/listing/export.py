"""Export everything a filter matches, as CSV, JSON or NDJSON, in constant memory.

Records are read by cursor in batches and written out batch by batch, so the size of an export
is limited by the client's patience, not by the server's memory. CSV cells that a spreadsheet
would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) are
prefixed with ``'``: an attacker-controlled user agent must not execute in an auditor's Excel.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from auditwire._fields import FLAT_FIELDS
from auditwire.query import AuditQuery, Cursor
from auditwire.record import flat_fields

if TYPE_CHECKING:
    from auditwire.record import AuditRecord
    from auditwire.stores.base import Store

__all__ = ["BATCH", "CSV_COLUMNS", "FORMATS", "ExportFormat", "csv_row", "export", "records"]

ExportFormat = Literal["csv", "json", "ndjson"]
FORMATS: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
}
BATCH = 1000
#: The record's flat fields, then its metadata as JSON.
CSV_COLUMNS: tuple[str, ...] = (*(name for name, _ in FLAT_FIELDS), "metadata")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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
