"""The Elasticsearch document of a record, in Elastic Common Schema.

ECS fields carry everything ECS has a place for, so Kibana, detection rules and other ECS data
work on audit records unchanged: ``@timestamp``, ``event.*``, ``user.*`` (the actor),
``user.target.*`` (a targeted user), ``source.ip``/``client.ip``, ``user_agent.*``,
``http.*``, ``url.path``, ``trace.id``/``span.id``, ``organization.id`` (the tenant),
``device.id``, ``related.*``. What ECS has no field for lives under one custom namespace,
``auditwire``. :func:`from_ecs` reads a document back into the identical record;
:func:`api_from_ecs` reads it straight into the record's API form, without validating, for
verification, which rehashes every record a store holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditwire._native import for_records
from auditwire._time import format_timestamp, parse_timestamp
from auditwire.record import (
    PART_TYPES,
    Actor,
    AuditRecord,
    DeviceInfo,
    IntegrityInfo,
    RequestInfo,
    Target,
    TraceInfo,
)

if TYPE_CHECKING:
    from auditwire_native import Documents

    from auditwire.catalog import EventCatalog, EventDefinition

__all__ = [
    "ECS_VERSION",
    "EVENT_DATASET",
    "NAMESPACE",
    "NATIVE_DOCUMENTS",
    "SCHEMA_VERSION",
    "api_from_ecs",
    "classification",
    "from_ecs",
    "to_ecs",
]

#: Bumped when the document layout or its mapping changes: a store whose cluster holds an
#: older template installs this one, and adds the new fields to existing partitions, before
#: its first send (a strict mapping would refuse the new fields).
SCHEMA_VERSION = 3
#: The ECS version the documents conform to (``ecs.version`` of each; the field set is checked
#: against ECS's field list by the tests). Schema 2 added the field; schema 3 added
#: ``auditwire.integrity``.
ECS_VERSION = "9.0.0"
NAMESPACE = "auditwire"
EVENT_DATASET = "auditwire.audit"
_ECS_OUTCOME = {"success": "success", "failure": "failure", "error": "failure"}
_DEFAULT_CLASS = (("iam",), ("info",))
#: The native encoder's writer of these documents (see :mod:`auditwire._native`), or ``None``.
_NATIVE = for_records(AuditRecord, *PART_TYPES.values())
NATIVE_DOCUMENTS: Documents | None = (
    None
    if _NATIVE is None
    else _NATIVE.Documents(ECS_VERSION, NAMESPACE, EVENT_DATASET, SCHEMA_VERSION, _ECS_OUTCOME)
)


def _person(who: Actor | Target) -> dict[str, Any]:
    """``user.*`` of an actor or a targeted user: only the fields it has."""
    out: dict[str, Any] = {}
    if who.id is not None:
        out["id"] = who.id
    if who.email is not None:
        out["email"] = who.email
    if who.name is not None:
        out["name"] = who.name
    return out


def _get(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def classification(
    record: AuditRecord, catalog: EventCatalog | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``event.category`` and ``event.type`` of a record: its catalog entry's, else ``iam``
    and ``info``."""
    event: EventDefinition | None = catalog.get(record.action) if catalog is not None else None
    return (event.ecs_category, event.ecs_type) if event is not None else _DEFAULT_CLASS


def to_ecs(record: AuditRecord, catalog: EventCatalog | None = None) -> dict[str, Any]:
    """The ECS document; ``catalog`` supplies ``event.category``/``event.type``.

    Every record goes through this on its way to a cluster, so it builds only the objects a
    record has instead of building all and pruning after."""
    ecs_category, ecs_type = classification(record, catalog)
    actor, target, request = record.actor, record.target, record.request
    device, trace, ip = record.device, record.trace, record.ip_address
    user_target = target if target is not None and target.type == "user" else None

    doc: dict[str, Any] = {
        "@timestamp": format_timestamp(record.timestamp),
        "ecs": {"version": ECS_VERSION},
    }
    if record.message is not None:
        doc["message"] = record.message
    ecs_event: dict[str, Any] = {
        "id": record.id,
        "kind": "event",
        "module": NAMESPACE,
        "dataset": EVENT_DATASET,
        "action": record.action,
        "category": list(ecs_category),
        "type": list(ecs_type),
        "outcome": _ECS_OUTCOME[record.outcome],
    }
    if request is not None and request.duration_ms is not None:
        ecs_event["duration"] = round(request.duration_ms * 1_000_000)
    doc["event"] = ecs_event
    user = _person(actor)
    if user_target is not None:
        targeted = _person(user_target)
        if targeted:
            user["target"] = targeted
    if user:
        doc["user"] = user
    if ip is not None:
        doc["source"] = {"ip": ip}
        doc["client"] = {"ip": ip}
    user_agent: dict[str, Any] = {}
    if record.user_agent is not None:
        user_agent["original"] = record.user_agent
    if device is not None:
        if device.browser is not None:
            user_agent["name"] = device.browser
        if device.browser_version is not None:
            user_agent["version"] = device.browser_version
        if device.os is not None or device.os_version is not None:
            user_os: dict[str, Any] = {}
            if device.os is not None:
                user_os["name"] = device.os
            if device.os_version is not None:
                user_os["version"] = device.os_version
            user_agent["os"] = user_os
        if device.device is not None:
            user_agent["device"] = {"name": device.device}
    if user_agent:
        doc["user_agent"] = user_agent
    if device is not None and device.id is not None:
        doc["device"] = {"id": device.id}
    peer_ip = None
    if request is not None:
        peer_ip = request.peer_ip
        http: dict[str, Any] = {}
        if request.id is not None or request.method is not None:
            http_request: dict[str, Any] = {}
            if request.id is not None:
                http_request["id"] = request.id
            if request.method is not None:
                http_request["method"] = request.method
            http["request"] = http_request
        if request.status is not None:
            http["response"] = {"status_code": request.status}
        if http:
            doc["http"] = http
        if request.path is not None:
            doc["url"] = {"path": request.path}
    if trace is not None:
        doc["trace"] = {"id": trace.trace_id}
        if trace.span_id is not None:
            doc["span"] = {"id": trace.span_id}
    if record.tenant is not None:
        doc["organization"] = {"id": record.tenant}
    related: dict[str, Any] = {}
    if ip is None or peer_ip is None or ip == peer_ip:
        if ip is not None or peer_ip is not None:
            related["ip"] = [ip if ip is not None else peer_ip]
    else:
        related["ip"] = sorted((ip, peer_ip))
    users = {
        u for u in (actor.id, actor.email, user_target and user_target.id) if u is not None
    }  # fmt: skip
    if users:
        related["user"] = sorted(users)
    if related:
        doc["related"] = related
    own: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "category": record.category,
        "outcome": record.outcome,
        "actor": {"type": actor.type},
    }
    if target is not None:
        own["target"] = target.to_api()
    own["metadata"] = record.metadata
    if request is not None and (request.route is not None or peer_ip is not None):
        own_request: dict[str, Any] = {}
        if request.route is not None:
            own_request["route"] = request.route
        if peer_ip is not None:
            own_request["peer_ip"] = peer_ip
        own["request"] = own_request
    if record.integrity is not None:
        own["integrity"] = record.integrity.to_api()
    doc[NAMESPACE] = own
    return doc


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
    target, integrity = own.get("target"), own.get("integrity")
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
        integrity=None if integrity is None else IntegrityInfo.from_api(integrity),
    )


def _present(pairs: tuple[tuple[str, Any], ...]) -> dict[str, Any] | None:
    """An API part of the pairs that are set, ``None`` when none is (as a record holds it)."""
    part = {name: value for name, value in pairs if value is not None}
    return part or None


def api_from_ecs(doc: dict[str, Any]) -> dict[str, Any]:
    """The API form of the record a document holds, read without validating (what
    ``from_ecs(doc).to_api()`` gives for a document auditwire wrote, at a fraction of the
    cost; a test proves the two agree). A document edited by hand may give a form no record
    has: its digest then no longer matches, which is what verification looks for."""
    own = doc.get(NAMESPACE) or {}
    user = doc.get("user") or {}
    user_agent = doc.get("user_agent") or {}
    duration_ns = _get(doc, "event.duration")
    trace_id = _get(doc, "trace.id")
    actor = {"type": _get(own, "actor.type") or "user"}
    for name in ("id", "email", "name"):
        if user.get(name) is not None:
            actor[name] = user[name]
    return {
        "id": _get(doc, "event.id"),
        "action": _get(doc, "event.action"),
        "category": own.get("category"),
        "actor": actor,
        "target": own.get("target"),
        "outcome": own.get("outcome"),
        "ipAddress": _get(doc, "source.ip"),
        "userAgent": user_agent.get("original"),
        "metadata": own.get("metadata") or {},
        "timestamp": doc.get("@timestamp"),
        "message": doc.get("message"),
        "tenant": _get(doc, "organization.id"),
        "request": _present(
            (
                ("id", _get(doc, "http.request.id")),
                ("method", _get(doc, "http.request.method")),
                ("route", _get(own, "request.route")),
                ("path", _get(doc, "url.path")),
                ("status", _get(doc, "http.response.status_code")),
                ("durationMs", None if duration_ns is None else round(duration_ns / 1_000_000, 3)),
                ("peerIp", _get(own, "request.peer_ip")),
            )
        ),
        "trace": None
        if trace_id is None
        else _present((("traceId", trace_id), ("spanId", _get(doc, "span.id")))),
        "device": _present(
            (
                ("id", _get(doc, "device.id")),
                ("browser", user_agent.get("name")),
                ("browserVersion", user_agent.get("version")),
                ("os", _get(user_agent, "os.name")),
                ("osVersion", _get(user_agent, "os.version")),
                ("device", _get(user_agent, "device.name")),
            )
        ),
        "integrity": own.get("integrity"),
    }
