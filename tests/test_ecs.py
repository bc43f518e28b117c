from __future__ import annotations

from typing import Any

from hypothesis import given

from auditwire import AuditRecord, EventCatalog, from_ecs, to_ecs
from auditwire.stores.index_template import TYPE_FALLBACKS, index_template, mappings
from tests.ecs_spec import ALLOWED, FIELDS
from tests.records import full_record, records

CATALOG = EventCatalog.default()


def leaves(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted path → value, stopping at the metadata object (a flattened field)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path != "auditwire.metadata":
            out.update(leaves(value, path + "."))
        else:
            out[path] = value
    return out


def mapped_fields(mapping: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, spec in mapping["properties"].items():
        path = f"{prefix}{key}"
        if "properties" in spec:
            out.update(mapped_fields(spec, path + "."))
        else:
            out[path] = spec
            for sub, sub_spec in spec.get("fields", {}).items():
                out[f"{path}.{sub}"] = sub_spec
    return out


@given(records())
def test_ecs_document_round_trips_losslessly(record: AuditRecord) -> None:
    assert from_ecs(to_ecs(record, CATALOG)) == record


@given(records())
def test_documents_carry_only_what_the_record_has(record: AuditRecord) -> None:
    """No nulls and no empty objects (the metadata object aside): round trips would not see
    them, but they would be indexed and shown."""

    def walk(value: Any, path: str) -> None:
        assert value is not None, path
        assert value != [], path
        if isinstance(value, dict) and path != "auditwire.metadata":
            assert value, path
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else key)

    walk(to_ecs(record, CATALOG), "")


def test_document_fields_are_ecs_or_in_the_auditwire_namespace() -> None:
    record = full_record(action="user_created")
    doc = to_ecs(record, CATALOG)
    for path in leaves(doc):
        assert path in FIELDS or path.startswith("auditwire."), path
    assert doc["event"]["category"] == ["iam"]
    assert doc["event"]["type"] == ["user", "creation"]
    assert doc["event"]["kind"] in ALLOWED["event.kind"]
    assert doc["user"]["target"] == {"id": "456", "email": "newuser@example.com"}
    assert doc["related"] == {
        "ip": ["10.0.0.5", "203.0.113.45"],
        "user": ["123", "456", "admin@example.com"],
    }
    assert doc["event"]["duration"] == 12_345_000


def test_outcomes_map_to_ecs_values() -> None:
    for outcome, ecs in (("success", "success"), ("failure", "failure"), ("error", "failure")):
        doc = to_ecs(full_record(outcome=outcome))
        assert doc["event"]["outcome"] == ecs
        assert ecs in ALLOWED["event.outcome"]
        assert doc["auditwire"]["outcome"] == outcome


def test_every_document_field_has_a_mapping() -> None:
    fields = mapped_fields(mappings())
    for path in leaves(to_ecs(full_record(), CATALOG)):
        assert path in fields, f"{path} has no mapping"


def test_mapping_types_follow_ecs() -> None:
    for path, spec in mapped_fields(mappings()).items():
        if path.startswith("auditwire."):
            continue
        assert path in FIELDS, f"{path} is not an ECS field"
        assert spec["type"] == FIELDS[path][0], path


def test_fallback_template_replaces_only_unsupported_types() -> None:
    body = index_template("x", unsupported_types=set(TYPE_FALLBACKS))
    fields = mapped_fields(body["template"]["mappings"])
    assert fields["message"]["type"] == "text"
    assert fields["url.path"]["type"] == "keyword"
    assert fields["user_agent.original.text"]["type"] == "text"
    assert fields["source.ip"]["type"] == "ip"
    assert body["index_patterns"] == ["x-*"]
    assert body["template"]["mappings"]["dynamic"] == "strict"
