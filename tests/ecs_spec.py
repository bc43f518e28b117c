"""The checked-in ECS specification (ECS's own generated field list and allowed values)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

_DATA = Path(__file__).parent / "data" / "ecs"

#: ECS field name → (type, normalization).
with (_DATA / "fields.csv").open(encoding="utf-8") as _file:
    FIELDS: dict[str, tuple[str, str]] = {
        row["Field"]: (row["Type"], row["Normalization"]) for row in csv.DictReader(_file)
    }
ALLOWED: dict[str, dict[str, list[str]]] = json.loads(
    (_DATA / "allowed-values.json").read_text(encoding="utf-8")
)
