"""The record's field names as its API spells them, derived from the dataclasses.

The record's fields are written once, in :mod:`auditwire.record`'s dataclasses; their API
names are the camelCase of the attribute names (``ip_address`` → ``ipAddress``). Serialising,
parsing, templates and the trusted constructors all read these tables, so a new field cannot
be forgotten in one of them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["FLAT_FIELDS", "api_names", "camel"]


def camel(name: str) -> str:
    """``duration_ms`` → ``durationMs``."""
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def api_names(cls: Any) -> tuple[tuple[str, str], ...]:
    """``(attribute, API name)`` of each field of a record dataclass, in declaration order."""
    return tuple((f.name, camel(f.name)) for f in dataclasses.fields(cls))


#: The record's scalar fields as one flat row (tables, CSV): API name → attribute path.
FLAT_FIELDS: tuple[tuple[str, str], ...] = (
    ("id", "id"),
    ("timestamp", "timestamp"),
    ("action", "action"),
    ("category", "category"),
    ("outcome", "outcome"),
    ("actorType", "actor.type"),
    ("actorId", "actor.id"),
    ("actorEmail", "actor.email"),
    ("targetType", "target.type"),
    ("targetId", "target.id"),
    ("ipAddress", "ip_address"),
    ("userAgent", "user_agent"),
    ("tenant", "tenant"),
    ("message", "message"),
)
