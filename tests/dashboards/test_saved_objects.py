"""The shipped saved objects, checked as far as can be without Kibana or OpenSearch
Dashboards: they parse, encoded attributes are strings that parse, every reference resolves in
the set, ids are unique and stable, dashboards obey Kibana's attribute schema and filter on
the package's events, and every field a panel uses is in the index template, aggregatable."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from auditwire.cli import main
from auditwire.dashboards import TARGETS, Target, saved_objects, to_ndjson
from auditwire.dashboards.panels import DASHBOARDS, DATASET, DATASET_FIELD
from auditwire.stores.index_template import index_template

#: Encoded attributes: JSON kept as strings by both products.
ENCODED = ("panelsJSON", "optionsJSON", "visState", "uiStateJSON")
#: Kibana's dashboard attributes (dashboard_saved_object/schema/v1): no other key is accepted.
DASHBOARD_ATTRIBUTES = {
    "kibanaSavedObjectMeta",
    "title",
    "description",
    "hits",
    "timeRestore",
    "timeFrom",
    "timeTo",
    "refreshInterval",
    "controlGroupInput",
    "optionsJSON",
    "panelsJSON",
    "version",
}
AGGREGATABLE = {"keyword", "ip", "long", "integer", "date", "boolean"}
#: The ids the import overwrites by: changing one orphans what users imported before.
IDS = {
    "kibana": [
        "auditwire-data-view",
        "auditwire-security-sensitive-changes",
        "auditwire-overview",
        "auditwire-security",
    ],
}


def template_fields() -> dict[str, str]:
    fields: dict[str, str] = {}

    def walk(mapping: dict[str, Any], prefix: str) -> None:
        for name, spec in mapping.get("properties", {}).items():
            if "properties" in spec:
                walk(spec, f"{prefix}{name}.")
            else:
                fields[prefix + name] = spec["type"]

    walk(index_template()["template"]["mappings"], "")
    return fields


def decoded(value: Any) -> Any:
    """An object with its encoded attributes parsed, and checked to be strings first."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ENCODED or key == "searchSourceJSON":
                assert isinstance(item, str), key
                item = json.loads(item)
            out[key] = decoded(item)
        return out
    if isinstance(value, list):
        return [decoded(v) for v in value]
    return value


def lines(target: Target) -> list[dict[str, Any]]:
    out = io.StringIO()
    assert main(["dashboards", "export", "--target", target], out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def used_fields(value: Any) -> set[str]:
    """Every field a decoded object names: Lens columns, aggregations, KQL, columns, filters."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("sourceField", "field", "key") and isinstance(item, str):
                found.add(item)
            elif key == "query" and isinstance(item, str):
                found |= set(re.findall(r"([\w.@]+) :", item))
            elif key == "columns" and isinstance(item, list):
                found |= {c for c in item if isinstance(c, str)}
            else:
                found |= used_fields(item)
    elif isinstance(value, list):
        for item in value:
            found |= used_fields(item)
    return found - {"___records___"}


@pytest.mark.parametrize("target", TARGETS)
def test_every_line_parses_and_every_reference_resolves(target: Target) -> None:
    objects = lines(target)
    assert objects == json.loads(json.dumps(saved_objects(target)))  # the CLI writes the set
    ids = [(o["type"], o["id"]) for o in objects]
    assert len(set(ids)) == len(ids)
    assert all(o["id"].startswith("auditwire-") for o in objects)
    known = set(ids)
    for obj in objects:
        assert set(obj) >= {"type", "id", "attributes", "references"}
        decoded(obj)  # encoded attributes are strings that parse
        for reference in obj["references"]:
            assert (reference["type"], reference["id"]) in known, (obj["id"], reference)
        names = [r["name"] for r in obj["references"]]
        assert len(set(names)) == len(names)


def test_the_ids_are_stable() -> None:
    assert [o["id"] for o in saved_objects("kibana")] == IDS["kibana"]
    assert saved_objects("kibana") == saved_objects("kibana")
    osd = [o["id"] for o in saved_objects("opensearch-dashboards")]
    assert "auditwire-osd-overview" in osd and "auditwire-osd-security" in osd


def test_kibana_dashboards_obey_the_attribute_schema_and_filter_on_the_package() -> None:
    for obj in saved_objects("kibana"):
        assert obj["coreMigrationVersion"] and obj["typeMigrationVersion"]
        if obj["type"] != "dashboard":
            continue
        attributes = obj["attributes"]
        assert attributes["title"] and set(attributes) <= DASHBOARD_ATTRIBUTES
        source = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
        (package,) = source["filter"]
        assert package["query"] == {"match_phrase": {DATASET_FIELD: DATASET}}
        panels = json.loads(attributes["panelsJSON"])
        names = {r["name"] for r in obj["references"]}
        for panel in panels:
            if panel["type"] == "lens":
                lens = panel["embeddableConfig"]["attributes"]
                assert lens["title"] and lens["visualizationType"].startswith("lns")
                for reference in lens["references"]:
                    assert f"{panel['panelIndex']}:{reference['name']}" in names
            elif panel["type"] == "search":
                assert panel["panelRefName"] in names
        grid = [(p["gridData"]["x"], p["gridData"]["y"]) for p in panels]
        assert len(set(grid)) == len(grid) and all(p["gridData"]["w"] <= 48 for p in panels)


def test_opensearch_dashboards_get_classic_visualizations_only() -> None:
    objects = saved_objects("opensearch-dashboards")
    text = to_ndjson(objects)
    assert "lens" not in text.lower() and "typeMigrationVersion" not in text
    assert {o["type"] for o in objects} == {"index-pattern", "visualization", "search", "dashboard"}
    for obj in objects:
        assert obj["migrationVersion"]
    panels = sum(len(d.panels) for d in DASHBOARDS)
    assert len([o for o in objects if o["type"] in ("visualization", "search")]) == panels


@pytest.mark.parametrize("target", TARGETS)
def test_every_field_is_in_the_index_template_and_aggregatable(target: Target) -> None:
    fields = template_fields()
    for obj in saved_objects(target):
        used = used_fields(decoded(obj))
        assert used <= set(fields), (obj["id"], used - set(fields))
        if obj["type"] == "search":
            continue
        not_countable = {f for f in used if fields[f] not in AGGREGATABLE}
        assert not not_countable, (obj["id"], not_countable)


def test_the_prefix_is_the_stores(tmp_path: Path) -> None:
    target = tmp_path / "kibana.ndjson"
    args = [
        "dashboards",
        "export",
        "--target",
        "kibana",
        "--prefix",
        "acme-audit",
        "-o",
        str(target),
    ]
    assert main(args) == 0
    data_view = json.loads(target.read_text().splitlines()[0])
    assert data_view["attributes"]["title"] == "acme-audit-*"


@pytest.mark.parametrize("target", TARGETS)
def test_the_shipped_files_are_the_codes(target: Target) -> None:
    shipped = Path(__file__).resolve().parents[2] / "integrations" / target / "auditwire.ndjson"
    assert shipped.read_text() == to_ndjson(saved_objects(target)), (
        f"regenerate with: auditwire dashboards export --target {target} -o {shipped}"
    )
