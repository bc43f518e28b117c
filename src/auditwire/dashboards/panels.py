"""The dashboards' panels, defined once: what each counts, over which field, under which filter.

Kibana's Lens objects (:mod:`auditwire.dashboards.kibana`) and OpenSearch Dashboards' classic
visualizations (:mod:`auditwire.dashboards.opensearch_dashboards`) are both rendered from these
definitions, so the two sets cannot drift apart. Fields are the ECS names of the index template;
filters are conjunctions of ``field : value`` choices, written as KQL in the saved objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "DASHBOARDS",
    "DATASET",
    "DATASET_FIELD",
    "SENSITIVE_CATEGORIES",
    "Dashboard",
    "Panel",
    "dashboard_attributes",
    "dataset_filter",
    "encoded",
    "kql",
]

#: Every dashboard filters on the package's own events.
DATASET_FIELD = "event.dataset"
DATASET = "auditwire.audit"
#: Changes an admin wants to see as they happen: keys and tokens, roles and members, webhooks,
#: integrations, exports.
SENSITIVE_CATEGORIES = (
    "api_key",
    "token_management",
    "role",
    "user_management",
    "webhook_endpoint",
    "integration",
    "export",
)

Chart = Literal["timeline", "bars", "donut", "metric", "markdown", "search"]
Where = tuple[tuple[str, tuple[str, ...]], ...]


def kql(where: Where) -> str:
    """A filter as KQL: each field one of its values, every field at once."""
    terms = []
    for field, values in where:
        choice = " or ".join(f'"{value}"' for value in values)
        terms.append(f"{field} : ({choice})" if len(values) > 1 else f"{field} : {choice}")
    return " and ".join(terms)


def encoded(value: Any) -> str:
    """JSON as both products keep it inside an object's attributes: a string."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def dataset_filter(index_ref_name: str) -> dict[str, Any]:
    """The filter every dashboard carries: the package's own events."""
    return {
        "meta": {
            "key": DATASET_FIELD,
            "type": "phrase",
            "params": {"query": DATASET},
            "negate": False,
            "disabled": False,
            "alias": None,
            "indexRefName": index_ref_name,
        },
        "query": {"match_phrase": {DATASET_FIELD: DATASET}},
        "$state": {"store": "appState"},
    }


#: Where a dashboard's own search source names its index, for the package filter's reference.
FILTER_INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.filter[0].meta.index"


def dashboard_attributes(
    dashboard: Dashboard, panels: list[dict[str, Any]], options: dict[str, Any]
) -> dict[str, Any]:
    """A dashboard's attributes in both products: its panels and options encoded, the last
    7 days, the package filter (its index referenced as :data:`FILTER_INDEX_REF`)."""
    return {
        "title": dashboard.title,
        "description": dashboard.description,
        "panelsJSON": encoded(panels),
        "optionsJSON": encoded(options),
        "timeRestore": True,
        "timeFrom": "now-7d",
        "timeTo": "now",
        "kibanaSavedObjectMeta": {
            "searchSourceJSON": encoded(
                {
                    "query": {"query": "", "language": "kuery"},
                    "filter": [dataset_filter(FILTER_INDEX_REF)],
                }
            )
        },
    }


@dataclass(frozen=True, slots=True)
class Panel:
    """One panel. ``timeline``: records per time bucket, split by ``split``; ``bars`` and
    ``donut``: the ``size`` most frequent values of ``field``; ``metric``: how many records;
    ``markdown``: ``text``; ``search``: the matching records with ``columns``. ``where``
    narrows what the panel counts; ``width`` and ``height`` are in the 48-column grid."""

    key: str
    title: str
    chart: Chart
    field: str | None = None
    split: str | None = None
    size: int = 10
    where: Where = ()
    text: str = ""
    columns: tuple[str, ...] = ()
    width: int = 24
    height: int = 12

    @property
    def query(self) -> str:
        return kql(self.where)


@dataclass(frozen=True, slots=True)
class Dashboard:
    key: str
    title: str
    description: str
    panels: tuple[Panel, ...]

    def grid(self) -> list[dict[str, int]]:
        """Each panel's place in the 48-column grid: left to right, a new row when full."""
        places = []
        x = y = row = 0
        for panel in self.panels:
            if x + panel.width > 48:
                x, y, row = 0, y + row, 0
            places.append({"x": x, "y": y, "w": panel.width, "h": panel.height})
            x, row = x + panel.width, max(row, panel.height)
        return places


_FAILED_LOGINS: Where = (
    ("auditwire.category", ("authentication",)),
    ("auditwire.outcome", ("failure",)),
)
_NAVIGATION = """**auditwire** — [Overview](#/view/auditwire-overview) ·
[Security](#/view/auditwire-security)

Records of the `auditwire.audit` dataset: who did what, from where, with what outcome."""

OVERVIEW = Dashboard(
    key="overview",
    title="[auditwire] Overview",
    description="Audit events over time, by outcome, action, category, actor and tenant.",
    panels=(
        Panel("navigation", "Dashboards", "markdown", text=_NAVIGATION, width=48, height=5),
        Panel(
            "events-over-time",
            "Events over time by outcome",
            "timeline",
            split="auditwire.outcome",
            size=3,
            width=32,
        ),
        Panel(
            "outcome-share", "Outcome share", "donut", field="auditwire.outcome", size=3, width=16
        ),
        Panel("top-actions", "Top actions", "bars", field="event.action", size=10),
        Panel("categories", "Events by category", "donut", field="auditwire.category", size=10),
        Panel("top-actors", "Top actors", "bars", field="user.id", size=10),
        Panel("tenants", "Tenants", "bars", field="organization.id", size=10),
        Panel(
            "http-status",
            "HTTP status of audited requests",
            "bars",
            field="http.response.status_code",
            size=10,
            where=(("auditwire.category", ("http",)),),
            width=48,
        ),
    ),
)

SECURITY = Dashboard(
    key="security",
    title="[auditwire] Security",
    description="Failed logins and where they come from, new devices, sensitive changes.",
    panels=(
        Panel("navigation", "Dashboards", "markdown", text=_NAVIGATION, width=48, height=5),
        Panel("failed-logins-count", "Failed logins", "metric", where=_FAILED_LOGINS, width=12),
        Panel(
            "failed-logins-over-time",
            "Failed logins over time",
            "timeline",
            where=_FAILED_LOGINS,
            width=36,
        ),
        Panel(
            "failed-login-ips",
            "Top source IPs of failed logins",
            "bars",
            field="source.ip",
            size=10,
            where=_FAILED_LOGINS,
        ),
        Panel(
            "new-device-logins",
            "New-device logins over time",
            "timeline",
            where=(("event.action", ("user.new_device_logged_in",)),),
        ),
        Panel(
            "sensitive-changes",
            "Security-sensitive changes",
            "search",
            where=(("auditwire.category", SENSITIVE_CATEGORIES),),
            columns=(
                "event.action",
                "user.email",
                "auditwire.target.id",
                "source.ip",
                "auditwire.outcome",
            ),
            width=48,
            height=15,
        ),
    ),
)

DASHBOARDS = (OVERVIEW, SECURITY)
