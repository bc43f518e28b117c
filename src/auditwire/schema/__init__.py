"""The JSON Schema of a record's API JSON, shipped with the package for API consumers."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

__all__ = [
    "SCHEMA_FILE",
    "record_schema",
]

SCHEMA_FILE = "audit-record.schema.json"


@cache
def record_schema() -> dict[str, Any]:
    """The parsed schema (cached; treat it as read-only)."""
    text = files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
