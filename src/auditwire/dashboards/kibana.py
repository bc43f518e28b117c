"""The dashboards as Kibana 8.x/9.x saved objects: a data view, Lens panels by value, a saved
search, markdown navigation.

Kibana keeps a dashboard's ``panelsJSON``, ``optionsJSON`` and ``searchSourceJSON`` as JSON
*strings*; they are built here as data and encoded last, so the source stays readable. Every
object's id is stable and starts with ``auditwire-``; every dashboard filters on the package's
dataset; the migration versions are the ones these attribute shapes were written for, so
Kibana migrates them forward on import.
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

__all__ = ["DATA_VIEW_ID", "MIGRATION", "kibana_objects"]

DATA_VIEW_ID = "auditwire-data-view"
#: ``coreMigrationVersion`` and each type's ``typeMigrationVersion``.
MIGRATION = {
    "core": "8.8.0",
    "index-pattern": "8.0.0",
    "search": "8.0.0",
    "dashboard": "8.7.0",
}
_LAYER = "layer1"
_REF_NAME = f"indexpattern-datasource-layer-{_LAYER}"
_COUNT = {
    "label": "Records",
    "dataType": "number",
    "operationType": "count",
    "isBucketed": False,
    "scale": "ratio",
    "sourceField": "___records___",
    "params": {"emptyAsNull": True},
}


def _terms(field: str, size: int, label: str) -> dict[str, Any]:
    return {
        "label": label,
        "dataType": "number" if field == "http.response.status_code" else "string",
        "operationType": "terms",
        "sourceField": field,
        "isBucketed": True,
        "scale": "ordinal",
        "params": {
            "size": size,
            "orderBy": {"type": "column", "columnId": "count"},
            "orderDirection": "desc",
            "otherBucket": False,
            "missingBucket": False,
        },
    }


def _date_histogram() -> dict[str, Any]:
    return {
        "label": "@timestamp",
        "dataType": "date",
        "operationType": "date_histogram",
        "sourceField": "@timestamp",
        "isBucketed": True,
        "scale": "interval",
        "params": {"interval": "auto", "includeEmptyRows": True, "dropPartials": False},
    }


def _lens(panel: Panel) -> dict[str, Any]:
    """The Lens attributes of a chart panel (``visualizationType``, ``state``, references)."""
    columns: dict[str, Any] = {"count": _COUNT}
    if panel.chart == "timeline":
        columns["time"] = _date_histogram()
        layer: dict[str, Any] = {
            "layerId": _LAYER,
            "layerType": "data",
            "seriesType": "bar_stacked",
            "xAccessor": "time",
            "accessors": ["count"],
        }
        if panel.split:
            columns["split"] = _terms(panel.split, panel.size, "Outcome")
            layer["splitAccessor"] = "split"
        kind = "lnsXY"
        visualization: dict[str, Any] = {
            "preferredSeriesType": "bar_stacked",
            "legend": {"isVisible": True, "position": "right"},
            "layers": [layer],
        }
    elif panel.chart == "bars":
        assert panel.field is not None
        columns["value"] = _terms(panel.field, panel.size, panel.title)
        kind = "lnsXY"
        visualization = {
            "preferredSeriesType": "bar_horizontal",
            "legend": {"isVisible": False, "position": "right"},
            "layers": [
                {
                    "layerId": _LAYER,
                    "layerType": "data",
                    "seriesType": "bar_horizontal",
                    "xAccessor": "value",
                    "accessors": ["count"],
                }
            ],
        }
    elif panel.chart == "donut":
        assert panel.field is not None
        columns["value"] = _terms(panel.field, panel.size, panel.title)
        kind = "lnsPie"
        visualization = {
            "shape": "donut",
            "layers": [
                {
                    "layerId": _LAYER,
                    "layerType": "data",
                    "primaryGroups": ["value"],
                    "metrics": ["count"],
                    "numberDisplay": "percent",
                    "categoryDisplay": "default",
                    "legendDisplay": "default",
                }
            ],
        }
    else:  # metric
        kind = "lnsMetric"
        visualization = {"layerId": _LAYER, "layerType": "data", "metricAccessor": "count"}
    order = [name for name in ("split", "time", "value", "count") if name in columns]
    return {
        "title": panel.title,
        "visualizationType": kind,
        "type": "lens",
        "references": [{"type": "index-pattern", "id": DATA_VIEW_ID, "name": _REF_NAME}],
        "state": {
            "visualization": visualization,
            "query": {"query": panel.query, "language": "kuery"},
            "filters": [],
            "datasourceStates": {
                "formBased": {
                    "layers": {
                        _LAYER: {"columns": columns, "columnOrder": order, "incompleteColumns": {}}
                    }
                }
            },
        },
    }


def _markdown(panel: Panel) -> dict[str, Any]:
    return {
        "savedVis": {
            "title": panel.title,
            "description": "",
            "type": "markdown",
            "params": {"markdown": panel.text, "fontSize": 12, "openLinksInNewTab": False},
            "uiState": {},
            "data": {"aggs": [], "searchSource": {}},
        },
        "enhancements": {},
    }


def _search_id(dashboard: Dashboard, panel: Panel) -> str:
    return f"auditwire-{dashboard.key}-{panel.key}"


def _search(dashboard: Dashboard, panel: Panel) -> dict[str, Any]:
    """A saved search: the records a panel's filter matches, newest first."""
    return {
        "type": "search",
        "id": _search_id(dashboard, panel),
        "attributes": {
            "title": f"[auditwire] {panel.title}",
            "description": "",
            "columns": list(panel.columns),
            "sort": [["@timestamp", "desc"]],
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": encoded(
                    {
                        "query": {"query": panel.query, "language": "kuery"},
                        "filter": [],
                        "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index",
                    }
                )
            },
        },
        "references": [
            {
                "type": "index-pattern",
                "id": DATA_VIEW_ID,
                "name": "kibanaSavedObjectMeta.searchSourceJSON.index",
            }
        ],
        "coreMigrationVersion": MIGRATION["core"],
        "typeMigrationVersion": MIGRATION["search"],
    }


def _dashboard(dashboard: Dashboard) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    references: list[dict[str, str]] = []
    for n, (panel, place) in enumerate(zip(dashboard.panels, dashboard.grid(), strict=True), 1):
        index = f"panel-{n}"
        grid = {**place, "i": index}
        entry: dict[str, Any] = {"panelIndex": index, "gridData": grid, "title": panel.title}
        if panel.chart == "markdown":
            entry.update(type="visualization", embeddableConfig=_markdown(panel))
        elif panel.chart == "search":
            entry.update(type="search", embeddableConfig={}, panelRefName=f"panel_{index}")
            references.append(
                {"type": "search", "id": _search_id(dashboard, panel), "name": f"panel_{index}"}
            )
        else:
            entry.update(
                type="lens", embeddableConfig={"attributes": _lens(panel), "enhancements": {}}
            )
            references.append(
                {"type": "index-pattern", "id": DATA_VIEW_ID, "name": f"{index}:{_REF_NAME}"}
            )
        panels.append(entry)
    references.append({"type": "index-pattern", "id": DATA_VIEW_ID, "name": FILTER_INDEX_REF})
    return {
        "type": "dashboard",
        "id": f"auditwire-{dashboard.key}",
        "attributes": dashboard_attributes(
            dashboard, panels, {"useMargins": True, "syncColors": False, "hidePanelTitles": False}
        ),
        "references": references,
        "coreMigrationVersion": MIGRATION["core"],
        "typeMigrationVersion": MIGRATION["dashboard"],
    }


def kibana_objects(read_pattern: str) -> list[dict[str, Any]]:
    """Every saved object, in import order (what others reference first), the data view over
    ``read_pattern``."""
    data_view = {
        "type": "index-pattern",
        "id": DATA_VIEW_ID,
        "attributes": {
            "title": read_pattern,
            "name": "auditwire audit events",
            "timeFieldName": "@timestamp",
        },
        "references": [],
        "coreMigrationVersion": MIGRATION["core"],
        "typeMigrationVersion": MIGRATION["index-pattern"],
    }
    searches = [
        _search(dashboard, panel)
        for dashboard in DASHBOARDS
        for panel in dashboard.panels
        if panel.chart == "search"
    ]
    return [data_view, *searches, *(_dashboard(d) for d in DASHBOARDS)]
