"""The canonical audit record.

One immutable record, validated when it is built, so that a store never sees half-valid data.
Its API serialisation (:meth:`AuditRecord.to_api`) is the identity product's audit-log object
(``id, action, category, actor, target, outcome, ipAddress, userAgent, metadata, timestamp``)
plus auditwire's ``message``, ``tenant``, ``request``, ``trace`` and ``device``; the
Elasticsearch serialisation lives in :mod:`auditwire.ecs`. Both round-trip losslessly.

Normalisation happens here, once: timestamps become UTC with millisecond precision (what an
Elasticsearch ``date`` keeps, so both stores order records identically), ids of actors and
targets become strings, IP addresses take their canonical text form, metadata is copied through
JSON (which proves it is JSON and detaches it from the caller's objects) and secret-looking
values are masked.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Literal, get_args

from auditwire._ids import ID_PATTERN, new_id
from auditwire.errors import InvalidRecordError
from auditwire.redaction import DEFAULT_REDACTOR

Outcome = Literal["success", "failure", "error"]
"""Result of the audited action, as in the identity product: ``failure`` is a refusal (wrong
password, access denied), ``error`` is a fault (an exception, a 5xx)."""

ActorType = Literal["user", "agent", "system"]
"""``user`` is a person, ``agent`` a machine credential such as an API key, ``system`` the
application itself (jobs, schedulers)."""

OUTCOMES: tuple[str, ...] = get_args(Outcome)
ACTOR_TYPES: tuple[str, ...] = get_args(ActorType)

#: Size limits. They bound the cost of one record for every store and the index mapping;
#: capture code truncates untrusted input to them before building a record.
MAX_NAME = 128
MAX_TEXT = 256
MAX_EMAIL = 320
MAX_USER_AGENT = 2048
MAX_MESSAGE = 4096
MAX_PATH = 2048
MAX_METADATA_BYTES = 32 * 1024

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_METHOD = re.compile(r"^[A-Z]{1,16}$")


def _text(path: str, value: object, limit: int, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InvalidRecordError(path, "is required")
        return None
    if not isinstance(value, str):
        raise InvalidRecordError(path, f"must be a string, not {type(value).__name__}")
    if required and not value:
        raise InvalidRecordError(path, "must not be empty")
    if len(value) > limit:
        raise InvalidRecordError(path, f"is {len(value)} characters long; the limit is {limit}")
    if "\x00" in value:
        raise InvalidRecordError(path, "must not contain NUL characters")
    return value


#: Names already seen valid: actions and categories repeat on every record.
_VALID_NAMES: set[str] = set()


def _name(path: str, value: object, *, required: bool = True) -> str | None:
    if type(value) is str and value in _VALID_NAMES:
        return value
    text = _text(path, value, MAX_NAME, required=required)
    if text is not None and _NAME.match(text) and len(_VALID_NAMES) < 10_000:
        _VALID_NAMES.add(text)
    elif text is not None and not _NAME.match(text):
        raise InvalidRecordError(
            path,
            f"{text!r} must start with a letter or digit and use only letters, digits, _ . : -",
        )
    return text


def _ident(path: str, value: object) -> str | None:
    """Ids of actors and targets: strings or integers (the identity product shows ``123``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _text(path, value, MAX_TEXT)


@lru_cache(maxsize=65536)
def canonical_ip(text: str) -> str | None:
    """The canonical text of an address, or ``None``; cached, since traffic repeats addresses
    and parsing one costs more than the rest of a record's validation."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _ip(path: str, value: object) -> str | None:
    text = _text(path, value, 64)
    if text is None:
        return None
    canonical = canonical_ip(text)
    if canonical is None:
        raise InvalidRecordError(path, f"{text!r} is not an IPv4 or IPv6 address")
    return canonical


_set = object.__setattr__  # frozen records are filled in by their own constructors


def _slot_setters(cls: type, names: str) -> tuple[Callable[[Any, Any], None], ...]:
    """The slots' own setters, in the order named: the unvalidated constructors fill every
    slot of a record made per request, and these skip ``object.__setattr__``'s lookup (a third
    of its cost). Every slot must be named, so a new field cannot be left unset."""
    order = names.split()
    slots = cls.__dict__["__slots__"]
    if sorted(order) != sorted(slots):
        raise AssertionError(f"{cls.__name__} slots are {slots}, not {order}")
    return tuple(cls.__dict__[name].__set__ for name in order)


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def normalise_timestamp(value: datetime, path: str = "timestamp") -> datetime:
    """UTC, millisecond precision; a naive datetime is refused rather than guessed at."""
    if type(value) is datetime and value.tzinfo is timezone.utc and not value.microsecond % 1000:
        return value
    if not isinstance(value, datetime):
        raise InvalidRecordError(path, f"must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRecordError(path, "must be timezone-aware (naive datetimes are ambiguous)")
    value = value.astimezone(timezone.utc)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


#: The last UTC time formatted, and its text: records written together mostly share their
#: millisecond, and ``isoformat`` costs microseconds.
_last_formatted: tuple[datetime, str] = (datetime.min.replace(tzinfo=timezone.utc), "")


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``: fixed width, so text order is time order."""
    global _last_formatted
    if value.tzinfo is timezone.utc:  # every record's: the C formatter, half the cost
        last, text = _last_formatted
        if value != last:
            text = value.isoformat(timespec="milliseconds")[:-6] + "Z"
            _last_formatted = (value, text)
        return text
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_timestamp(value: object, path: str = "timestamp") -> datetime:
    """Read an ISO 8601 timestamp written by :func:`format_timestamp` or by another producer."""
    if isinstance(value, datetime):
        return normalise_timestamp(value, path)
    if not isinstance(value, str):
        raise InvalidRecordError(path, f"must be an ISO 8601 string, not {type(value).__name__}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRecordError(path, f"{value!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise InvalidRecordError(path, f"{value!r} has no time zone")
    return normalise_timestamp(parsed, path)


def _check_json(path: str, value: Any, depth: int = 0) -> None:
    """Name the exact place that is not JSON, which ``json.dumps`` does not do."""
    if depth > 32:
        raise InvalidRecordError(path, "nests more than 32 levels deep")
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is int:
        return
    if kind is not dict and kind is not list and isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRecordError(path, f"{value!r} is not a finite number")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRecordError(path, f"has a non-string key {key!r}")
            _check_json(f"{path}.{key}", item, depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_json(f"{path}[{index}]", item, depth + 1)
        return
    raise InvalidRecordError(path, f"{type(value).__name__} is not JSON-serialisable")


def normalise_metadata(value: object) -> dict[str, Any]:
    if value is None or (type(value) is dict and not value):
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRecordError("metadata", f"must be a mapping, not {type(value).__name__}")
    _check_json("metadata", value)
    encoded = json.dumps(DEFAULT_REDACTOR.redact(value), ensure_ascii=False, separators=(",", ":"))
    size = len(encoded.encode())
    if size > MAX_METADATA_BYTES:
        raise InvalidRecordError(
            "metadata", f"is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}"
        )
    copied: dict[str, Any] = json.loads(encoded)
    return copied


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performed the action."""

    type: ActorType = "user"
    id: str | None = None
    email: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.type not in ACTOR_TYPES:
            raise InvalidRecordError(
                "actor.type", f"{self.type!r} is not one of {', '.join(ACTOR_TYPES)}"
            )
        _set(self, "id", _ident("actor.id", self.id))
        _text("actor.email", self.email, MAX_EMAIL)
        _text("actor.name", self.name, MAX_TEXT)

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(type="system", id=name)

    def to_api(self) -> dict[str, Any]:
        return _drop_none(
            {"type": self.type, "id": self.id, "email": self.email, "name": self.name}
        )

    @classmethod
    def from_api(cls, data: object) -> Actor:
        if isinstance(data, Actor):
            return data
        mapping = _mapping("actor", data)
        return cls(
            type=mapping.get("type", "user"),
            id=mapping.get("id"),
            email=mapping.get("email"),
            name=mapping.get("name"),
        )


@dataclass(frozen=True, slots=True)
class Target:
    """The resource the action affected (a user, an API key, a webhook endpoint...)."""

    type: str
    id: str | None = None
    email: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        _name("target.type", self.type)
        _set(self, "id", _ident("target.id", self.id))
        _text("target.email", self.email, MAX_EMAIL)
        _text("target.name", self.name, MAX_TEXT)

    def to_api(self) -> dict[str, Any]:
        return _drop_none(
            {"type": self.type, "id": self.id, "email": self.email, "name": self.name}
        )

    @classmethod
    def from_api(cls, data: object) -> Target:
        if isinstance(data, Target):
            return data
        mapping = _mapping("target", data)
        return cls(
            type=mapping.get("type"),  # type: ignore[arg-type]  # validated in __post_init__
            id=mapping.get("id"),
            email=mapping.get("email"),
            name=mapping.get("name"),
        )


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """The HTTP request an audited action came in on."""

    id: str | None = None
    method: str | None = None
    route: str | None = None
    path: str | None = None
    status: int | None = None
    duration_ms: float | None = None
    peer_ip: str | None = None

    def __post_init__(self) -> None:
        _text("request.id", self.id, MAX_NAME)
        if self.method is not None and not (
            isinstance(self.method, str) and _METHOD.match(self.method)
        ):
            raise InvalidRecordError("request.method", f"{self.method!r} is not an HTTP method")
        _text("request.route", self.route, MAX_PATH)
        _text("request.path", self.path, MAX_PATH)
        if self.status is not None and (
            not isinstance(self.status, int)
            or isinstance(self.status, bool)
            or not 100 <= self.status <= 599
        ):
            raise InvalidRecordError("request.status", f"{self.status!r} is not an HTTP status")
        if self.duration_ms is not None:
            if isinstance(self.duration_ms, bool) or not isinstance(self.duration_ms, (int, float)):
                raise InvalidRecordError("request.duration_ms", "must be a number")
            if not math.isfinite(self.duration_ms) or self.duration_ms < 0:
                raise InvalidRecordError("request.duration_ms", "must be finite and >= 0")
            # Microsecond precision: what the ECS document's nanosecond field keeps exactly.
            _set(self, "duration_ms", round(float(self.duration_ms), 3))
        _set(self, "peer_ip", _ip("request.peer_ip", self.peer_ip))

    @classmethod
    def _sanitised(
        cls,
        id: str | None,
        method: str | None,
        route: str | None,
        path: str | None,
        status: int | None,
        duration_ms: float | None,
        peer_ip: str | None,
    ) -> RequestInfo:
        """Build without validation, from values the capture code has already made valid
        (sanitised request facts): validating them again is a third of a request record's cost.
        Not for anything else."""
        set_id, set_method, set_route, set_path, set_status, set_duration, set_peer = _REQUEST_SLOTS
        info = object.__new__(cls)
        set_id(info, id)
        set_method(info, method)
        set_route(info, route)
        set_path(info, path)
        set_status(info, status)
        set_duration(info, duration_ms)
        set_peer(info, peer_ip)
        return info

    def to_api(self) -> dict[str, Any]:
        return _drop_none(
            {
                "id": self.id,
                "method": self.method,
                "route": self.route,
                "path": self.path,
                "status": self.status,
                "durationMs": self.duration_ms,
                "peerIp": self.peer_ip,
            }
        )

    @classmethod
    def from_api(cls, data: object) -> RequestInfo:
        mapping = _mapping("request", data)
        return cls(
            id=mapping.get("id"),
            method=mapping.get("method"),
            route=mapping.get("route"),
            path=mapping.get("path"),
            status=mapping.get("status"),
            duration_ms=mapping.get("durationMs"),
            peer_ip=mapping.get("peerIp"),
        )


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """W3C trace context of the work that produced the record (OpenTelemetry ids in hex)."""

    trace_id: str
    span_id: str | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.trace_id, str) and _HEX32.match(self.trace_id)):
            raise InvalidRecordError("trace.traceId", "must be 32 lowercase hex characters")
        if self.span_id is not None and not (
            isinstance(self.span_id, str) and _HEX16.match(self.span_id)
        ):
            raise InvalidRecordError("trace.spanId", "must be 16 lowercase hex characters")

    def to_api(self) -> dict[str, Any]:
        return _drop_none({"traceId": self.trace_id, "spanId": self.span_id})

    @classmethod
    def from_api(cls, data: object) -> TraceInfo:
        mapping = _mapping("trace", data)
        return cls(trace_id=mapping.get("traceId"), span_id=mapping.get("spanId"))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """The client device: a stable device id where the app has one, and the parsed user agent."""

    id: str | None = None
    browser: str | None = None
    browser_version: str | None = None
    os: str | None = None
    os_version: str | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        for name in self.__slots__:
            _text(f"device.{name}", getattr(self, name), MAX_TEXT)

    def to_api(self) -> dict[str, Any]:
        return _drop_none(
            {
                "id": self.id,
                "browser": self.browser,
                "browserVersion": self.browser_version,
                "os": self.os,
                "osVersion": self.os_version,
                "device": self.device,
            }
        )

    @classmethod
    def from_api(cls, data: object) -> DeviceInfo:
        mapping = _mapping("device", data)
        return cls(
            id=mapping.get("id"),
            browser=mapping.get("browser"),
            browser_version=mapping.get("browserVersion"),
            os=mapping.get("os"),
            os_version=mapping.get("osVersion"),
            device=mapping.get("device"),
        )


_REQUEST_SLOTS = _slot_setters(RequestInfo, "id method route path status duration_ms peer_ip")
_EMPTY_REQUEST = RequestInfo()
_EMPTY_DEVICE = DeviceInfo()


def _mapping(path: str, data: object) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidRecordError(path, f"must be an object, not {type(data).__name__}")
    return data


#: The last millisecond made a datetime, and that datetime (immutable: records share it).
_last_moment: tuple[int, datetime] = (-1, datetime.min.replace(tzinfo=timezone.utc))


def utc_from_ms(ms: int) -> datetime:
    """The UTC datetime of a millisecond since the epoch, at record precision. Records made
    together mostly share their millisecond, so the last one is reused."""
    global _last_moment
    last_ms, moment = _last_moment
    if ms != last_ms:
        moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
        _last_moment = (ms, moment)
    return moment


def _utcnow() -> datetime:
    """Now, already at millisecond precision (so normalising it is a no-op)."""
    return utc_from_ms(time.time_ns() // 1_000_000)


def _part(path: str, value: object, kind: type[Any]) -> None:
    if value is not None and not isinstance(value, kind):
        raise InvalidRecordError(path, f"must be a {kind.__name__}, not {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit event. Build it through :meth:`auditwire.AuditLog.record` to get the catalog's
    category and message; building it directly validates it all the same."""

    action: str
    category: str
    actor: Actor = field(default_factory=Actor.system)
    target: Target | None = None
    outcome: Outcome = "success"
    ip_address: str | None = None
    user_agent: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime = field(default_factory=_utcnow)
    message: str | None = None
    tenant: str | None = None
    request: RequestInfo | None = None
    trace: TraceInfo | None = None
    device: DeviceInfo | None = None
    id: str = field(default_factory=new_id)

    def __post_init__(self) -> None:
        if not (isinstance(self.id, str) and ID_PATTERN.match(self.id)):
            raise InvalidRecordError("id", f"{self.id!r} is not an auditwire record id")
        _name("action", self.action)
        _name("category", self.category)
        if self.outcome not in OUTCOMES:
            raise InvalidRecordError(
                "outcome", f"{self.outcome!r} is not one of {', '.join(OUTCOMES)}"
            )
        _part("actor", self.actor, Actor)
        if self.actor is None:
            raise InvalidRecordError("actor", "is required (use Actor.system() for the app itself)")
        _part("target", self.target, Target)
        _part("request", self.request, RequestInfo)
        _part("trace", self.trace, TraceInfo)
        _part("device", self.device, DeviceInfo)
        # An empty part carries nothing; keeping it would make two spellings of one record.
        if self.request is not None and self.request == _EMPTY_REQUEST:
            _set(self, "request", None)
        if self.device is not None and self.device == _EMPTY_DEVICE:
            _set(self, "device", None)
        _set(self, "ip_address", _ip("ipAddress", self.ip_address))
        _text("userAgent", self.user_agent, MAX_USER_AGENT)
        _text("message", self.message, MAX_MESSAGE)
        _text("tenant", self.tenant, MAX_TEXT)
        _set(self, "metadata", normalise_metadata(self.metadata))
        _set(self, "timestamp", normalise_timestamp(self.timestamp))

    @classmethod
    def _sanitised(
        cls,
        action: str,
        category: str,
        actor: Actor,
        target: Target | None,
        outcome: Outcome,
        ip_address: str | None,
        user_agent: str | None,
        metadata: dict[str, Any],
        timestamp: datetime,
        tenant: str | None,
        request: RequestInfo | None,
        trace: TraceInfo | None,
        device: DeviceInfo | None,
    ) -> AuditRecord:
        """Build without validation, from parts that are valid by construction: validated
        objects (actor, target, request, trace, device), names from the catalog, and values the
        capture code sanitised (canonical addresses, capped user agents, millisecond UTC
        timestamps, normalised metadata). Validating them again is most of the cost of a
        captured request's record, paid for every request. Not for anything else."""
        (
            set_id, set_action, set_category, set_actor, set_target, set_outcome, set_ip,
            set_user_agent, set_metadata, set_timestamp, set_message, set_tenant, set_request,
            set_trace, set_device,
        ) = _RECORD_SLOTS  # fmt: skip
        record = object.__new__(cls)
        set_id(record, new_id())
        set_action(record, action)
        set_category(record, category)
        set_actor(record, actor)
        set_target(record, target)
        set_outcome(record, outcome)
        set_ip(record, ip_address)
        set_user_agent(record, user_agent)
        set_metadata(record, metadata)
        set_timestamp(record, timestamp)
        set_message(record, None)
        set_tenant(record, tenant)
        set_request(record, request)
        set_trace(record, trace)
        set_device(record, device)
        return record

    def _set_message(self, message: str) -> None:
        """Fill in the rendered message of a record that was just built and is not shared yet
        (rendering needs the validated record; building it twice would double the cost)."""
        _text("message", message, MAX_MESSAGE)
        _set(self, "message", message)

    def with_changes(self, **changes: Any) -> AuditRecord:
        """A validated copy with some fields replaced (records themselves never change)."""
        return replace(self, **changes)

    def to_api(self) -> dict[str, Any]:
        """The API JSON object (camelCase keys, ISO 8601 UTC timestamp)."""
        return {
            "id": self.id,
            "action": self.action,
            "category": self.category,
            "actor": self.actor.to_api(),
            "target": None if self.target is None else self.target.to_api(),
            "outcome": self.outcome,
            "ipAddress": self.ip_address,
            "userAgent": self.user_agent,
            "metadata": self.metadata,
            "timestamp": format_timestamp(self.timestamp),
            "message": self.message,
            "tenant": self.tenant,
            "request": None if self.request is None else self.request.to_api(),
            "trace": None if self.trace is None else self.trace.to_api(),
            "device": None if self.device is None else self.device.to_api(),
        }

    @classmethod
    def from_api(cls, data: object) -> AuditRecord:
        """Validate and rebuild a record from its API JSON object."""
        mapping = _mapping("record", data)
        if "id" not in mapping:
            raise InvalidRecordError("id", "is required")
        if "timestamp" not in mapping:
            raise InvalidRecordError("timestamp", "is required")

        def part(key: str, build: Any) -> Any:
            value = mapping.get(key)
            return None if value is None else build(value)

        return cls(
            id=mapping["id"],
            action=mapping.get("action"),  # type: ignore[arg-type]
            category=mapping.get("category"),  # type: ignore[arg-type]
            actor=Actor.from_api(mapping.get("actor")),
            target=part("target", Target.from_api),
            outcome=mapping.get("outcome"),  # type: ignore[arg-type]
            ip_address=mapping.get("ipAddress"),
            user_agent=mapping.get("userAgent"),
            metadata=mapping.get("metadata") or {},
            timestamp=parse_timestamp(mapping["timestamp"]),
            message=mapping.get("message"),
            tenant=mapping.get("tenant"),
            request=part("request", RequestInfo.from_api),
            trace=part("trace", TraceInfo.from_api),
            device=part("device", DeviceInfo.from_api),
        )


_RECORD_SLOTS = _slot_setters(
    AuditRecord,
    "id action category actor target outcome ip_address user_agent metadata timestamp message "
    "tenant request trace device",
)


def flat_fields(record: AuditRecord) -> dict[str, str | None]:
    """The record's scalar fields by their API names, for tabular stores and exports."""
    target = record.target
    return {
        "id": record.id,
        "timestamp": format_timestamp(record.timestamp),
        "action": record.action,
        "category": record.category,
        "outcome": record.outcome,
        "actorType": record.actor.type,
        "actorId": record.actor.id,
        "actorEmail": record.actor.email,
        "targetType": target.type if target else None,
        "targetId": target.id if target else None,
        "ipAddress": record.ip_address,
        "userAgent": record.user_agent,
        "tenant": record.tenant,
        "message": record.message,
    }
