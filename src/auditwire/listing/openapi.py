"""The OpenAPI 3.1 description of the audit-log API (:mod:`auditwire.web`).

Built from the same vocabulary and schema the code uses, so the description cannot drift from
the behaviour: the filter parameters come from :data:`auditwire.listing.params.VOCABULARY`,
the record from the shipped JSON Schema.
"""

from __future__ import annotations

from typing import Any

from auditwire.aggregation import INTERVALS, MAX_TOP, TOP_FIELDS
from auditwire.listing.export import FORMATS
from auditwire.listing.params import VOCABULARY
from auditwire.query import MAX_LIMIT
from auditwire.record import OUTCOMES
from auditwire.schema import record_schema

__all__ = ["openapi_document"]

_SINGLE = {"start", "end"}
_DESCRIPTIONS = {
    "start": "ISO 8601; UTC when no zone is given; a bare date starts at its midnight",
    "end": "ISO 8601, exclusive; UTC when no zone is given; a bare date includes that day",
    "users": "actor ids or emails",
    "source_ips": "IP addresses or CIDR networks",
}


def _filter_parameters() -> list[dict[str, Any]]:
    parameters = []
    for name, field in VOCABULARY.items():
        item: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 320}
        if field == "outcomes":
            item = {"type": "string", "enum": list(OUTCOMES)}
        schema: dict[str, Any] = (
            {"type": "string", "minLength": 1}
            if field in _SINGLE
            else {"type": "array", "items": item, "maxItems": 100}
        )
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": False,
            "schema": schema,
        }
        if field not in _SINGLE:
            parameter.update(style="form", explode=True)
        if field in _DESCRIPTIONS:
            parameter["description"] = _DESCRIPTIONS[field]
        parameters.append(parameter)
    return parameters


def _paging_parameters() -> list[dict[str, Any]]:
    return [
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "continue after the last record of a page (no total)"},
    ]  # fmt: skip


def _chart_parameters() -> list[dict[str, Any]]:
    return [
        {"name": "interval", "in": "query", "schema": {"enum": list(INTERVALS)}, "description": "the timeline's bucket; by default the finest that draws the date range in at most 400"},
        {"name": "top", "in": "query", "schema": {"type": "array", "items": {"enum": list(TOP_FIELDS)}}, "style": "form", "explode": True, "description": "fields to count the most frequent values of"},
        {"name": "size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_TOP}, "description": "how many values of each field (10)"},
    ]  # fmt: skip


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _rebase(value: Any, names: dict[str, str]) -> Any:
    """The JSON Schema's ``#/$defs/x`` references as OpenAPI component references."""
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return {"$ref": f"#/components/schemas/{names[ref[8:]]}"}
        return {k: _rebase(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebase(v, names) for v in value]
    return value


def openapi_document(prefix: str = "/t/{tenant}/api/v1/admin") -> dict[str, Any]:
    """The description of the routes mounted at ``prefix`` (with a ``{tenant}`` parameter)."""
    source = record_schema()
    names = {name: f"Record{name.capitalize()}" for name in source["$defs"]}
    defs = {names[n]: _rebase(d, names) for n, d in source["$defs"].items()}
    record = _rebase(
        {k: v for k, v in source.items() if k not in ("$schema", "$id", "$defs")}, names
    )
    tenant = [
        {
            "name": "tenant",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": "the caller's own tenant (up to 256 characters); another's is a 403",
        }
    ]
    list_params = tenant + _filter_parameters() + _paging_parameters()
    common = {
        "400": _error("a parameter was invalid (named in the answer)"),
        "403": _error("not allowed to read audit logs, or not this tenant's"),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "auditwire audit logs", "version": "1"},
        "paths": {
            f"{prefix}/audit-logs": {
                "get": {
                    "summary": "List audit logs",
                    "parameters": list_params,
                    "responses": {
                        "200": {
                            "description": "a page of records",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/List"}
                                }
                            },
                        },
                        **common,
                    },
                }
            },
            f"{prefix}/audit-logs/aggregations": {
                "get": {
                    "summary": "Count audit logs over time and by field, for charts",
                    "parameters": tenant + _filter_parameters() + _chart_parameters(),
                    "responses": {
                        "200": {
                            "description": "the timeline by outcome and the top values",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Aggregations"}
                                }
                            },
                        },
                        **common,
                    },
                }
            },
            f"{prefix}/audit-logs/{{log_id}}": {
                "get": {
                    "summary": "Retrieve an audit log",
                    "parameters": [
                        *tenant,
                        {
                            "name": "log_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "the record",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "data": {"$ref": "#/components/schemas/AuditRecord"}
                                        },
                                    }
                                }
                            },
                        },
                        **common,
                        "404": _error("no such record in this tenant"),
                    },
                }
            },
            f"{prefix}/audit-logs/export": {
                "post": {
                    "summary": "Export audit logs",
                    "parameters": tenant,
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "format": {"enum": list(FORMATS)},
                                        "filters": {
                                            "type": "object",
                                            "description": "filter parameters, as for the list",
                                            "additionalProperties": {
                                                "oneOf": [
                                                    {"type": "string"},
                                                    {"type": "integer"},
                                                    {"type": "array", "items": {"type": "string"}},
                                                ]
                                            },
                                        },
                                    },
                                }
                            }
                        }
                    },
                    "responses": {
                        "200": {
                            "description": "the file, streamed",
                            "content": {
                                m: {"schema": {"type": "string"}} for m in FORMATS.values()
                            },
                        },
                        **common,
                    },
                }
            },
            f"{prefix}/security_logs": {
                "get": {
                    "summary": "Security logs (the billing product's shape)",
                    "parameters": list_params,
                    "responses": {
                        "200": {
                            "description": "a page of security logs",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **common,
                    },
                }
            },
        },
        "components": {
            "schemas": {
                **defs,
                "AuditRecord": record,
                "List": {
                    "type": "object",
                    "required": ["data", "meta"],
                    "properties": {
                        "data": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/AuditRecord"},
                        },
                        "meta": {"type": "object"},
                    },
                },
                "Aggregations": {
                    "type": "object",
                    "required": ["data", "meta"],
                    "properties": {
                        "data": {
                            "type": "object",
                            "required": ["timeline", "top"],
                            "properties": {
                                "timeline": {
                                    "type": "object",
                                    "properties": {
                                        "interval": {"enum": list(INTERVALS)},
                                        "buckets": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "required": ["start", "total", "counts"],
                                            },
                                        },
                                    },
                                },
                                "top": {"type": "object"},
                            },
                        },
                        "meta": {"type": "object", "required": ["total"]},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "message"]}},
                },
            }
        },
    }
