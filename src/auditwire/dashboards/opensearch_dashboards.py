"""The dashboards as OpenSearch Dashboards 2.x saved objects: an index pattern, classic
visualizations, a saved search, dashboards that reference them.

OpenSearch Dashboards forked from Kibana 7.10: it has no Lens and refuses 8.x objects, so this
set is built from the same panel definitions in the 7.10 shapes (``visState`` aggregations,
``migrationVersion``), with the same stable ids under an ``auditwire-osd-`` prefix.
"""

from __future__ import annotations

from typing import Any

from auditwire.dashboards.panels import (
    DASHBOARDS,
    FILTER_INDEX_REF,
    Dashboard,
    Panel,
    dashboard_attributes,
    encoded,
)

__all__ = ["INDEX_PATTERN_ID", "MIGRATION", "opensearch_dashboards_objects"]

INDEX_PATTERN_ID = "auditwire-osd-index-pattern"
MIGRATION = {
    "index-pattern": "7.6.0",
    "visualization": "7.10.0",
    "search": "7.9.3",
    "dashboard": "7.9.3",
}
_INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def _aggs(panel: Panel) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """The visualization type, its params and its aggregations (the count first)."""
    aggs: list[dict[str, Any]] = [
        {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}}
    ]

    def terms(field: str, size: int, schema: str, agg_id: str) -> dict[str, Any]:
        return {
            "id": agg_id,
            "enabled": True,
            "type": "terms",
            "schema": schema,
            "params": {
                "field": field,
                "size": size,
                "order": "desc",
                "orderBy": "1",
                "otherBucket": False,
                "missingBucket": False,
            },
        }

    if panel.chart == "timeline":
        aggs.append(
            {
                "id": "2",
                "enabled": True,
                "type": "date_histogram",
                "schema": "segment",
                "params": {
                    "field": "@timestamp",
                    "interval": "auto",
                    "min_doc_count": 1,
                    "extended_bounds": {},
                },
            }
        )
        if panel.split:
            aggs.append(terms(panel.split, panel.size, "group", "3"))
        return "histogram", {"type": "histogram", "addLegend": True, "mode": "stacked"}, aggs
    if panel.chart in ("bars", "donut"):
        assert panel.field is not None
        schema = "segment"
        aggs.append(terms(panel.field, panel.size, schema, "2"))
        if panel.chart == "donut":
            return "pie", {"type": "pie", "isDonut": True, "addLegend": True}, aggs
        return "horizontal_bar", {"type": "histogram", "addLegend": False}, aggs
    return "metric", {"type": "metric", "addLegend": False}, aggs


def _visualization(dashboard: Dashboard, panel: Panel) -> dict[str, Any]:
    aggs: list[dict[str, Any]] = []
    if panel.chart == "markdown":
        vis_type, params = "markdown", {"markdown": panel.text, "fontSize": 12}
        search: dict[str, Any] = {"query": {"query": "", "language": "kuery"}, "filter": []}
        references: list[dict[str, str]] = []
    else:
        vis_type, params, aggs = _aggs(panel)
        search = {
            "query": {"query": panel.query, "language": "kuery"},
            "filter": [],
            "indexRefName": _INDEX_REF,
        }
        references = [{"name": _INDEX_REF, "type": "index-pattern", "id": INDEX_PATTERN_ID}]
    return {
        "type": "visualization",
        "id": f"auditwire-osd-{dashboard.key}-{panel.key}",
        "attributes": {
            "title": f"[auditwire] {panel.title}",
            "description": "",
            "version": 1,
            "uiStateJSON": "{}",
            "visState": encoded(
                {"title": panel.title, "type": vis_type, "params": params, "aggs": aggs}
            ),
            "kibanaSavedObjectMeta": {"searchSourceJSON": encoded(search)},
        },
        "references": references,
        "migrationVersion": {"visualization": MIGRATION["visualization"]},
    }


def _search(dashboard: Dashboard, panel: Panel) -> dict[str, Any]:
    return {
        "type": "search",
        "id": f"auditwire-osd-{dashboard.key}-{panel.key}",
        "attributes": {
            "title": f"[auditwire] {panel.title}",
            "description": "",
            "columns": list(panel.columns),
            "sort": [["@timestamp", "desc"]],
            "version": 1,
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": encoded(
                    {
                        "query": {"query": panel.query, "language": "kuery"},
                        "filter": [],
                        "indexRefName": _INDEX_REF,
                    }
                )
            },
        },
        "references": [{"name": _INDEX_REF, "type": "index-pattern", "id": INDEX_PATTERN_ID}],
        "migrationVersion": {"search": MIGRATION["search"]},
    }


def _dashboard(dashboard: Dashboard, members: list[dict[str, Any]]) -> dict[str, Any]:
    panels = []
    references = []
    places = dashboard.grid()
    for n, (place, member) in enumerate(zip(places, members, strict=True), 1):
        panels.append(
            {
                "panelIndex": str(n),
                "gridData": {**place, "i": str(n)},
                "version": "2.11.0",
                "embeddableConfig": {},
                "panelRefName": f"panel_{n - 1}",
            }
        )
        references.append({"name": f"panel_{n - 1}", "type": member["type"], "id": member["id"]})
    references.append({"name": FILTER_INDEX_REF, "type": "index-pattern", "id": INDEX_PATTERN_ID})
    return {
        "type": "dashboard",
        "id": f"auditwire-osd-{dashboard.key}",
        "attributes": {
            **dashboard_attributes(
                dashboard, panels, {"useMargins": True, "hidePanelTitles": False}
            ),
            "version": 1,
        },
        "references": references,
        "migrationVersion": {"dashboard": MIGRATION["dashboard"]},
    }


def opensearch_dashboards_objects(read_pattern: str) -> list[dict[str, Any]]:
    """Every saved object, in import order, the index pattern over ``read_pattern``."""
    index_pattern = {
        "type": "index-pattern",
        "id": INDEX_PATTERN_ID,
        "attributes": {"title": read_pattern, "timeFieldName": "@timestamp"},
        "references": [],
        "migrationVersion": {"index-pattern": MIGRATION["index-pattern"]},
    }
    objects: list[dict[str, Any]] = [index_pattern]
    for dashboard in DASHBOARDS:
        members = [
            _search(dashboard, panel)
            if panel.chart == "search"
            else _visualization(dashboard, panel)
            for panel in dashboard.panels
        ]
        objects += [*members, _dashboard(dashboard, members)]
    return objects
