"""Each shipped panel's query, run: its buckets and metrics, read back from the saved objects,
become the Elasticsearch aggregation the product would send (Lens columns for Kibana,
``visState`` aggregations for OpenSearch Dashboards), run against the real Elasticsearch and
OpenSearch of the suite over generated records, and give the numbers the viewer's aggregation
API gives for the same records on SQLite.

A dashboard's time range picks the interval at run time (``auto``); here it is an hour, as
the aggregation API is asked for.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from auditwire import Actor, AuditQuery, AuditRecord, SQLiteStore, TimeBucket, TopValue
from auditwire.dashboards import Target, saved_objects
from auditwire.record import RequestInfo
from auditwire.stores.elasticsearch import ElasticsearchStore, OpenSearchStore
from auditwire.stores.translate import TOP_COLUMNS

T0 = datetime(2025, 3, 3, tzinfo=timezone.utc)
ACTIONS = {
    "login": "authentication",
    "login_failed": "authentication",
    "user.new_device_logged_in": "authentication",
    "api_key.rotated": "api_key",
    "user.role_edited": "user_management",
    "webhook_endpoint.created": "webhook_endpoint",
    "http.request": "http",
}
#: ECS field of a KQL filter → the AuditQuery field it is.
QUERY_FIELDS = {
    "event.action": "actions",
    "auditwire.category": "categories",
    "auditwire.outcome": "outcomes",
}
#: ECS field counted → the aggregation API's field name.
API_FIELDS = {es: name for name, (es, _) in TOP_COLUMNS.items()}


def generate(count: int) -> list[AuditRecord]:
    rng = random.Random(1503)
    records = []
    for _ in range(count):
        action = rng.choice(list(ACTIONS))
        failed = action == "login_failed" or rng.random() < 0.1
        records.append(
            AuditRecord(
                action=action,
                category=ACTIONS[action],
                actor=Actor(id=f"usr_{rng.randrange(15)}", email=f"u{rng.randrange(15)}@acme.test"),
                outcome="failure" if failed else rng.choice(["success", "success", "error"]),
                ip_address=rng.choice(["203.0.113.5", "198.51.100.7", "2001:db8::9", None]),
                tenant=rng.choice(["acme", "globex", None]),
                request=RequestInfo(status=rng.choice([200, 200, 302, 403, 404, 500]))
                if action == "http.request"
                else None,
                timestamp=T0 + timedelta(seconds=rng.randrange(0, 12 * 3600)),
            )
        )
    return records


@pytest.fixture(scope="module")
def stores(
    es_url: str, opensearch_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    from elasticsearch import Elasticsearch
    from opensearchpy import OpenSearch

    records = generate(1500)
    sqlite = SQLiteStore(Path(tmp_path_factory.mktemp("panels")) / "audit.db")
    sqlite.write(records)
    es = ElasticsearchStore(Elasticsearch(es_url, request_timeout=60), prefix="test-panels")
    opensearch = OpenSearchStore(OpenSearch(opensearch_url, timeout=60), prefix="test-panels")
    for store in (es, opensearch):
        store.setup()
        store.write(records)
        store.refresh_indices()
    yield {"sqlite": sqlite, "kibana": es, "opensearch-dashboards": opensearch}
    for store in (es, opensearch):
        names = list(store.client.indices.get(index=store.read_pattern))
        store.client.indices.delete(index=",".join(names))
        store.client.indices.delete_index_template(name=store.prefix)


def kql_filters(kql: str) -> tuple[list[dict[str, Any]], dict[str, tuple[str, ...]]]:
    """The KQL the panels use (``field : "v"``, ``field : ("a" or "b")``, joined by ``and``) as
    Kibana sends it — term filters — and as an AuditQuery's fields."""
    filters: list[dict[str, Any]] = []
    fields: dict[str, tuple[str, ...]] = {}
    for clause in filter(None, kql.split(" and ")):
        match = re.fullmatch(r"([\w.@]+) : \(?(.*?)\)?", clause)
        assert match, clause
        values = tuple(re.findall(r'"([^"]*)"', match[2]))
        filters.append({"bool": {"should": [{"match_phrase": {match[1]: v}} for v in values]}})
        fields[QUERY_FIELDS[match[1]]] = values
    return filters, fields


def panels(target: Target) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every chart panel of the set: its title, its KQL and its buckets (``time``, ``split``,
    ``value``: ``(field, size)``), as read from the saved objects."""
    objects = saved_objects(target)
    if target == "kibana":
        for dashboard in (o for o in objects if o["type"] == "dashboard"):
            for panel in json.loads(dashboard["attributes"]["panelsJSON"]):
                if panel["type"] != "lens":
                    continue
                lens = panel["embeddableConfig"]["attributes"]
                layer = next(
                    iter(lens["state"]["datasourceStates"]["formBased"]["layers"].values())
                )
                buckets = {}
                for name, column in layer["columns"].items():
                    if column["operationType"] == "date_histogram":
                        buckets["time"] = (column["sourceField"], 0)
                    elif column["operationType"] == "terms":
                        assert column["params"]["orderBy"] == {
                            "type": "column",
                            "columnId": "count",
                        }
                        buckets[name] = (column["sourceField"], column["params"]["size"])
                yield lens["title"], lens["state"]["query"]["query"], buckets
        return
    for vis in (o for o in objects if o["type"] == "visualization"):
        state = json.loads(vis["attributes"]["visState"])
        if state["type"] == "markdown":
            continue
        source = json.loads(vis["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        buckets = {}
        for agg in state["aggs"]:
            if agg["type"] == "date_histogram":
                buckets["time"] = (agg["params"]["field"], 0)
            elif agg["type"] == "terms":
                assert agg["params"]["orderBy"] == "1"  # the count
                name = "split" if agg["schema"] == "group" else "value"
                buckets[name] = (agg["params"]["field"], agg["params"]["size"])
        yield state["title"], source["query"]["query"], buckets


def search(store: ElasticsearchStore, body: dict[str, Any]) -> dict[str, Any]:
    if isinstance(store, OpenSearchStore):
        answer: dict[str, Any] = store.client.search(index=store.read_pattern, body=body)
        return answer
    found: dict[str, Any] = store.client.search(index=store.read_pattern, **body).body
    return found


def run(store: ElasticsearchStore, kql: str, buckets: dict[str, Any]) -> Any:
    """The panel's aggregation on the cluster, its buckets in the aggregation API's shape."""
    filters, _ = kql_filters(kql)
    filters.append({"match_phrase": {"event.dataset": "auditwire.audit"}})
    body: dict[str, Any] = {"query": {"bool": {"filter": filters}}, "size": 0}
    if "time" in buckets:
        histogram: dict[str, Any] = {
            "date_histogram": {"field": "@timestamp", "fixed_interval": "1h", "min_doc_count": 1}
        }
        split = buckets.get("split")
        if split:
            terms = {"field": split[0], "size": split[1], "order": {"_count": "desc"}}
            histogram["aggs"] = {"split": {"terms": terms}}
        body["aggs"] = {"time": histogram}
        found = search(store, body)["aggregations"]["time"]["buckets"]
        if not split:
            return [
                (datetime.fromtimestamp(b["key"] / 1000, timezone.utc), b["doc_count"])
                for b in found
            ]
        return [
            TimeBucket(
                datetime.fromtimestamp(b["key"] / 1000, timezone.utc),
                {s["key"]: s["doc_count"] for s in b["split"]["buckets"]},
            )
            for b in found
        ]
    if "value" in buckets:
        field, size = buckets["value"]
        terms = {"field": field, "size": size, "order": {"_count": "desc"}}
        body["aggs"] = {"value": {"terms": terms}}
        found = search(store, body)["aggregations"]["value"]["buckets"]
        return [TopValue(str(b["key"]), b["doc_count"]) for b in found]
    body["track_total_hits"] = True
    return search(store, body)["hits"]["total"]["value"]


def expected(sqlite: SQLiteStore, kql: str, buckets: dict[str, Any]) -> Any:
    """The same panel from the viewer's aggregation API on SQLite."""
    _, fields = kql_filters(kql)
    query = AuditQuery(**fields)  # type: ignore[arg-type]
    if "time" in buckets:
        timeline = sqlite.timeline(query, "hour")
        return timeline if "split" in buckets else [(b.start, b.total) for b in timeline]
    if "value" in buckets:
        field, size = buckets["value"]
        return sqlite.top(query, API_FIELDS[field], size)
    return sqlite.count(query)


@pytest.mark.parametrize("target", ["kibana", "opensearch-dashboards"])
def test_every_panel_counts_what_the_aggregation_api_counts(
    stores: dict[str, Any], target: Target
) -> None:
    ran = 0
    for title, kql, buckets in panels(target):
        found = run(stores[target], kql, buckets)
        assert found == expected(stores["sqlite"], kql, buckets), title
        assert found, f"{title}: the generated records give this panel nothing to show"
        ran += 1
    assert ran == 11  # every chart panel of both dashboards
