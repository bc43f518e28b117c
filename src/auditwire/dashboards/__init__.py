"""Kibana and OpenSearch Dashboards content: the dashboards, defined once
(:mod:`~auditwire.dashboards.panels`), as saved objects for either product.

    auditwire dashboards export --target kibana > auditwire-kibana.ndjson

Standard library only: the objects are data, written as NDJSON for the products' saved-objects
import API.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from auditwire.dashboards.kibana import kibana_objects
from auditwire.dashboards.opensearch_dashboards import opensearch_dashboards_objects
from auditwire.stores.index_template import DEFAULT_PREFIX, read_pattern

__all__ = ["TARGETS", "Target", "saved_objects", "to_ndjson"]

Target = Literal["kibana", "opensearch-dashboards"]
TARGETS: tuple[Target, ...] = ("kibana", "opensearch-dashboards")


def saved_objects(target: Target, prefix: str = DEFAULT_PREFIX) -> list[dict[str, Any]]:
    """The saved objects for ``target``, over the indices of ``prefix`` (the store's)."""
    if target == "kibana":
        return kibana_objects(read_pattern(prefix))
    if target == "opensearch-dashboards":
        return opensearch_dashboards_objects(read_pattern(prefix))
    raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")


def to_ndjson(objects: list[dict[str, Any]]) -> str:
    """One object a line, as the import API reads them."""
    return "".join(json.dumps(o, ensure_ascii=False, sort_keys=True) + "\n" for o in objects)
