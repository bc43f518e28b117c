"""The Elasticsearch document of a record, in Elastic Common Schema.

ECS fields carry everything ECS has a place for, so Kibana, detection rules and other ECS data
work on audit records unchanged: ``@timestamp``, ``event.*``, ``user.*`` (the actor),
``user.target.*`` (a targeted user), ``source.ip``/``client.ip``, ``user_agent.*``,
``http.*``, ``url.path``, ``trace.id``/``span.id``, ``organization.id`` (the tenant),
``device.id``, ``related.*``. What ECS has no field for lives under one custom namespace,
``auditwire``. :func:`from_ecs` reads a document back into the identical record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditwire.record import (
    Actor,
    AuditRecord,
    DeviceInfo,
    RequestInfo,
    Target,
    TraceInfo,
    format_timestamp,
    parse_timestamp,
)

if TYPE_CHECKING:
    from auditwire.catalog import EventCatalog, EventDefinition

#: Bumped when the document layout changes incompatibly.
SCHEMA_VERSION = 1
NAMESPACE = "auditwire"
EVENT_DATASET = "auditwire.audit"
_ECS_OUTCOME = {"success": "success", "failure": "failure", "error": "failure"}
_DEFAULT_CLASS = (("iam",), ("info",))


def _prune(data: dict[str, Any]) -> dict[str, Any]:
    """Drop ``None`` and empty objects so documents carry only what the record has (every
    record goes through this on its way to a store: it is written for speed)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        if type(value) is dict and key != "metadata":
            value = _prune(value)
            if not value:
                continue
        out[key] = value
    return out


def _get(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def to_ecs(record: AuditRecord, catalog: EventCatalog | None = None) -> dict[str, Any]:
    """The ECS document; ``catalog`` supplies ``event.category``/``event.type``."""
    event: EventDefinition | None = catalog.get(record.action) if catalog is not None else None
    ecs_category, ecs_type = (
        (event.ecs_category, event.ecs_type) if event is not None else _DEFAULT_CLASS
    )
    actor, target, request = record.actor, record.target, record.request
    device, trace = record.device, record.trace
    related_ip = [ip for ip in (record.ip_address, request and request.peer_ip) if ip]
    related_user = [
        u
        for u in (actor.id, actor.email, target and target.type == "user" and target.id)
        if isinstance(u, str)
    ]
    doc = {
        "@timestamp": format_timestamp(record.timestamp),
        "message": record.message,
        "event": {
            "id": record.id,
            "kind": "event",
            "module": NAMESPACE,
            "dataset": EVENT_DATASET,
            "action": record.action,
            "category": list(ecs_category),
            "type": list(ecs_type),
            "outcome": _ECS_OUTCOME[record.outcome],
            "duration": (
                None
                if request is None or request.duration_ms is None
                else round(request.duration_ms * 1_000_000)
            ),
        },
        "user": {
            "id": actor.id,
            "email": actor.email,
            "name": actor.name,
            "target": (
                {"id": target.id, "email": target.email, "name": target.name}
                if target is not None and target.type == "user"
                else None
            ),
        },
        "source": {"ip": record.ip_address},
        "client": {"ip": record.ip_address},
        "user_agent": {
            "original": record.user_agent,
            "name": device.browser,
            "version": device.browser_version,
            "os": {"name": device.os, "version": device.os_version},
            "device": {"name": device.device},
        }
        if device is not None
        else {"original": record.user_agent},
        "device": None if device is None else {"id": device.id},
        "http": None
        if request is None
        else {
            "request": {"id": request.id, "method": request.method},
            "response": {"status_code": request.status},
        },
        "url": None if request is None else {"path": request.path},
        "trace": None if trace is None else {"id": trace.trace_id},
        "span": None if trace is None else {"id": trace.span_id},
        "organization": {"id": record.tenant},
        "related": {
            "ip": sorted(set(related_ip)) or None,
            "user": sorted(set(related_user)) or None,
        },
        NAMESPACE: {
            "schema_version": SCHEMA_VERSION,
            "category": record.category,
            "outcome": record.outcome,
            "actor": {"type": actor.type},
            "target": None if target is None else target.to_api(),
            "metadata": record.metadata,
            "request": (
                None if request is None else {"route": request.route, "peer_ip": request.peer_ip}
            ),
        },
    }
    return _prune(doc)


def from_ecs(doc: dict[str, Any]) -> AuditRecord:
    """Rebuild the record a document was made from (validation included)."""
    own = doc.get(NAMESPACE) or {}
    duration_ns = _get(doc, "event.duration")
    request_fields = {
        "id": _get(doc, "http.request.id"),
        "method": _get(doc, "http.request.method"),
        "route": _get(own, "request.route"),
        "path": _get(doc, "url.path"),
        "status": _get(doc, "http.response.status_code"),
        "duration_ms": None if duration_ns is None else round(duration_ns / 1_000_000, 3),
        "peer_ip": _get(own, "request.peer_ip"),
    }
    device_fields = {
        "id": _get(doc, "device.id"),
        "browser": _get(doc, "user_agent.name"),
        "browser_version": _get(doc, "user_agent.version"),
        "os": _get(doc, "user_agent.os.name"),
        "os_version": _get(doc, "user_agent.os.version"),
        "device": _get(doc, "user_agent.device.name"),
    }
    trace_id = _get(doc, "trace.id")
    target = own.get("target")
    return AuditRecord(
        id=_get(doc, "event.id"),
        action=_get(doc, "event.action"),
        category=own.get("category"),  # type: ignore[arg-type]  # validated by AuditRecord
        actor=Actor(
            type=_get(own, "actor.type") or "user",
            id=_get(doc, "user.id"),
            email=_get(doc, "user.email"),
            name=_get(doc, "user.name"),
        ),
        target=None if target is None else Target.from_api(target),
        outcome=own.get("outcome"),  # type: ignore[arg-type]
        ip_address=_get(doc, "source.ip"),
        user_agent=_get(doc, "user_agent.original"),
        metadata=own.get("metadata") or {},
        timestamp=parse_timestamp(doc.get("@timestamp"), "@timestamp"),
        message=doc.get("message"),
        tenant=_get(doc, "organization.id"),
        request=(
            RequestInfo(**request_fields)
            if any(v is not None for v in request_fields.values())
            else None
        ),
        trace=None if trace_id is None else TraceInfo(trace_id, _get(doc, "span.id")),
        device=(
            DeviceInfo(**device_fields)
            if any(v is not None for v in device_fields.values())
            else None
        ),
    )
