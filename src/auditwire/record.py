"""The canonical audit record.

One immutable record, validated when it is built, so that a store never sees half-valid data.
Its API serialisation (:meth:`AuditRecord.to_api`) is the identity product's audit-log object
(``id, action, category, actor, target, outcome, ipAddress, userAgent, metadata, timestamp``)
plus auditwire's ``message``, ``tenant``, ``request``, ``trace``, ``device`` and ``integrity``; the
Elasticsearch serialisation lives in :mod:`auditwire.ecs`. Both round-trip losslessly.

Normalisation happens here, once: timestamps become UTC with millisecond precision (what an
Elasticsearch ``date`` keeps, so both stores order records identically), ids of actors and
targets become strings, IP addresses take their canonical text form, metadata is copied through
JSON (which proves it is JSON and detaches it from the caller's objects) and secret-looking
values are masked.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, replace
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import Any, ClassVar, Literal, TypeVar, get_args
from uuid import UUID

from auditwire._fields import FLAT_FIELDS, api_names
from auditwire._ids import ID_PATTERN, new_id
from auditwire._time import format_timestamp, normalise_timestamp, parse_timestamp, utcnow
from auditwire.errors import InvalidRecordError
from auditwire.redaction import DEFAULT_REDACTOR

__all__ = [
    "ACTOR_TYPES",
    "EMPTY_DEVICE",
    "EMPTY_REQUEST",
    "HTTP_METHOD",
    "MAX_EMAIL",
    "MAX_MESSAGE",
    "MAX_METADATA_BYTES",
    "MAX_NAME",
    "MAX_PATH",
    "MAX_TEXT",
    "MAX_USER_AGENT",
    "OUTCOMES",
    "PART_TYPES",
    "Actor",
    "ActorType",
    "AuditRecord",
    "DeviceInfo",
    "IntegrityInfo",
    "Outcome",
    "RequestInfo",
    "Target",
    "TraceInfo",
    "canonical_ip",
    "check_name",
    "check_text",
    "flat_fields",
    "normalise_metadata",
    "user_field",
]

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
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: What a record accepts as an HTTP method.
HTTP_METHOD = re.compile(r"^[A-Z]{1,16}$")


def check_text(path: str, value: object, limit: int, *, required: bool = False) -> str | None:
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


def check_name(path: str, value: object, *, required: bool = True) -> str | None:
    if type(value) is str and value in _VALID_NAMES:
        return value
    text = check_text(path, value, MAX_NAME, required=required)
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
    return check_text(path, value, MAX_TEXT)


@lru_cache(maxsize=65536)
def canonical_ip(text: str) -> str | None:
    """The canonical text of an address, or ``None``; cached, since traffic repeats addresses
    and parsing one costs more than the rest of a record's validation."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _ip(path: str, value: object) -> str | None:
    text = check_text(path, value, 64)
    if text is None:
        return None
    canonical = canonical_ip(text)
    if canonical is None:
        raise InvalidRecordError(path, f"{text!r} is not an IPv4 or IPv6 address")
    return canonical


_set = object.__setattr__  # frozen records are filled in by their own constructors


def _check_json(path: str, value: Any, depth: int = 0) -> None:
    """Name the exact place that is not JSON, which ``json.dumps`` does not do."""
    if depth > 32:
        raise InvalidRecordError(path, "nests more than 32 levels deep")
    kind = type(value)
    if kind is int and not -(2**63) <= value < 2**64:
        # Every store and JSON reader handles 64 bits; beyond, some read a float back.
        raise InvalidRecordError(path, f"{value} is beyond 64 bits; store it as text")
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
    if isinstance(value, _COERCED) and not (isinstance(value, Decimal) and not value.is_finite()):
        return
    raise InvalidRecordError(path, f"{type(value).__name__} is not JSON-serialisable")


#: Values applications commonly put in metadata that JSON lacks, stored as their text.
_COERCED = (datetime, date, time, UUID, Decimal)


def _as_json(value: Any) -> str:
    """``json.dumps``'s ``default``: dates and times in ISO 8601, UUIDs and decimals as text
    (a decimal exactly, never through a float)."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return str(value)


def normalise_metadata(value: object) -> dict[str, Any]:
    if value is None or (type(value) is dict and not value):
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRecordError("metadata", f"must be a mapping, not {type(value).__name__}")
    _check_json("metadata", value)
    encoded = json.dumps(
        DEFAULT_REDACTOR.redact(value), ensure_ascii=False, separators=(",", ":"), default=_as_json
    )
    size = len(encoded.encode())
    if size > MAX_METADATA_BYTES:
        raise InvalidRecordError(
            "metadata", f"is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}"
        )
    copied: dict[str, Any] = json.loads(encoded)
    return copied


_P = TypeVar("_P", bound="_Part")


class _Part:
    """What the record's parts share: their API object (camelCase keys, absent fields left
    out) and its parsing, both from the dataclass's own field list."""

    __slots__ = ()
    #: The part's name in error messages, and its ``(attribute, API name)`` pairs.
    PATH: ClassVar[str]
    API: ClassVar[tuple[tuple[str, str], ...]]
    #: What an API object that leaves a field out means (a person, for an actor's type).
    DEFAULTS: ClassVar[tuple[Any, ...]]

    def to_api(self) -> dict[str, Any]:
        out = {}
        for attribute, name in self.API:
            value = getattr(self, attribute)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_api(cls: type[_P], data: object) -> _P:
        if isinstance(data, cls):
            return data
        mapping = _mapping(cls.PATH, data)
        return cls(
            **{
                attribute: mapping.get(name, default)
                for (attribute, name), default in zip(cls.API, cls.DEFAULTS, strict=True)
            }
        )


def user_field(value: object, limit: int) -> str | None:
    """A user object's attribute as an actor's field: its text, or ``None`` when no record can
    carry it (longer than ``limit``, a NUL) — dropped, not cut: a cut id or email would name
    someone else."""
    if value is None or value == "":
        return None
    text = str(value)
    return None if "\x00" in text or len(text) > limit else text


def _first(user: object, names: tuple[str, ...]) -> object:
    """The first of ``user``'s attributes (methods called) that has a value."""
    for name in names:
        value = getattr(user, name, None)
        if callable(value):
            value = value()
        if value is not None and value != "":
            return value
    return None


@dataclass(frozen=True, slots=True)
class Actor(_Part):
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
        check_text("actor.email", self.email, MAX_EMAIL)
        check_text("actor.name", self.name, MAX_TEXT)

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(type="system", id=name)

    @classmethod
    def of(cls, user: object) -> Actor | None:
        """The actor ``user`` names, whatever the application holds: an :class:`Actor`; a
        mapping in the record's shape; a string or integer (the id); an object with an
        ``auditwire_actor()`` method returning any of these; an unauthenticated user object
        (``is_authenticated`` false: Django's, flask-login's, Starlette's) as an anonymous
        user; else any user object — an ORM model, a framework's user — read through its
        ``get_id()``, ``pk`` or ``id`` for the id, ``email``, and ``get_username()``,
        ``name``, ``username`` or ``display_name`` for the name. ``None`` names nobody.

        Fields no record can carry (too long, a NUL) are left out, not cut: a cut id or email
        would name someone else."""
        if user is None or isinstance(user, Actor):
            return user
        if isinstance(user, Mapping):
            return cls.from_api(user)
        if isinstance(user, (str, int)) and not isinstance(user, bool):
            return cls(id=str(user))
        own = getattr(user, "auditwire_actor", None)
        if callable(own):
            return cls.of(own())
        if getattr(user, "is_authenticated", True) is False:
            return cls()
        actor = cls(
            id=user_field(_first(user, ("get_id", "pk", "id")), MAX_TEXT),
            email=user_field(getattr(user, "email", None), MAX_EMAIL),
            name=user_field(
                _first(user, ("get_username", "name", "username", "display_name")), MAX_TEXT
            ),
        )
        if actor == cls():  # an object that is no user, or whose fields no record holds
            raise InvalidRecordError(
                "actor",
                f"a {type(user).__name__} names no user: give it an id, pk, email or name, "
                "or an auditwire_actor() method",
            )
        return actor


@dataclass(frozen=True, slots=True)
class Target(_Part):
    """The resource the action affected (a user, an API key, a webhook endpoint...)."""

    type: str
    id: str | None = None
    email: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        check_name("target.type", self.type)
        _set(self, "id", _ident("target.id", self.id))
        check_text("target.email", self.email, MAX_EMAIL)
        check_text("target.name", self.name, MAX_TEXT)


@dataclass(frozen=True, slots=True)
class RequestInfo(_Part):
    """The HTTP request an audited action came in on."""

    id: str | None = None
    method: str | None = None
    route: str | None = None
    path: str | None = None
    status: int | None = None
    duration_ms: float | None = None
    peer_ip: str | None = None

    def __post_init__(self) -> None:
        check_text("request.id", self.id, MAX_NAME)
        if self.method is not None and not (
            isinstance(self.method, str) and HTTP_METHOD.match(self.method)
        ):
            raise InvalidRecordError("request.method", f"{self.method!r} is not an HTTP method")
        check_text("request.route", self.route, MAX_PATH)
        check_text("request.path", self.path, MAX_PATH)
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


@dataclass(frozen=True, slots=True)
class TraceInfo(_Part):
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


@dataclass(frozen=True, slots=True)
class DeviceInfo(_Part):
    """The client device: a stable device id where the app has one, and the parsed user agent."""

    id: str | None = None
    browser: str | None = None
    browser_version: str | None = None
    os: str | None = None
    os_version: str | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        for attribute, name in self.API:
            check_text(f"device.{name}", getattr(self, attribute), MAX_TEXT)


@dataclass(frozen=True, slots=True)
class IntegrityInfo(_Part):
    """The record's place in its writer's hash chain (see :mod:`auditwire.seal`): the log it
    belongs to, the writing process, its sequence number there, the previous record's hash and
    its own. Set when the record is sealed, never by the application."""

    origin: str
    writer: str
    seq: int
    prev: str
    hash: str | None = None

    def __post_init__(self) -> None:
        check_text("integrity.origin", self.origin, MAX_NAME, required=True)
        check_name("integrity.writer", self.writer)
        if type(self.seq) is not int or self.seq < 1:
            raise InvalidRecordError("integrity.seq", "must be a positive integer")
        for name in ("prev", "hash"):
            value = getattr(self, name)
            if (value is not None or name == "prev") and not (
                isinstance(value, str) and _HEX64.match(value)
            ):
                raise InvalidRecordError(f"integrity.{name}", "must be 64 lowercase hex characters")


for _kind, _path in (
    (Actor, "actor"),
    (Target, "target"),
    (RequestInfo, "request"),
    (TraceInfo, "trace"),
    (DeviceInfo, "device"),
    (IntegrityInfo, "integrity"),
):
    _kind.PATH, _kind.API = _path, api_names(_kind)
    _kind.DEFAULTS = tuple(
        None if f.default is MISSING else f.default for f in dataclasses.fields(_kind)
    )

#: Empty parts carry nothing: a record holds ``None`` instead (one spelling per record).
EMPTY_REQUEST = RequestInfo()
EMPTY_DEVICE = DeviceInfo()


def _mapping(path: str, data: object) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidRecordError(path, f"must be an object, not {type(data).__name__}")
    return data


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
    timestamp: datetime = field(default_factory=utcnow)
    message: str | None = None
    tenant: str | None = None
    request: RequestInfo | None = None
    trace: TraceInfo | None = None
    device: DeviceInfo | None = None
    integrity: IntegrityInfo | None = None
    id: str = field(default_factory=new_id)

    def __post_init__(self) -> None:
        if not (isinstance(self.id, str) and ID_PATTERN.match(self.id)):
            raise InvalidRecordError("id", f"{self.id!r} is not an auditwire record id")
        check_name("action", self.action)
        check_name("category", self.category)
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
        _part("integrity", self.integrity, IntegrityInfo)
        # An empty part carries nothing; keeping it would make two spellings of one record.
        if self.request is not None and self.request == EMPTY_REQUEST:
            _set(self, "request", None)
        if self.device is not None and self.device == EMPTY_DEVICE:
            _set(self, "device", None)
        _set(self, "ip_address", _ip("ipAddress", self.ip_address))
        check_text("userAgent", self.user_agent, MAX_USER_AGENT)
        check_text("message", self.message, MAX_MESSAGE)
        check_text("tenant", self.tenant, MAX_TEXT)
        _set(self, "metadata", normalise_metadata(self.metadata))
        _set(self, "timestamp", normalise_timestamp(self.timestamp))

    def with_changes(self, **changes: Any) -> AuditRecord:
        """A validated copy with some fields replaced (records themselves never change)."""
        return replace(self, **changes)

    def to_api(self) -> dict[str, Any]:
        """The API JSON object (camelCase keys, ISO 8601 UTC timestamp; every key present,
        ``null`` for what the record does not carry)."""
        out: dict[str, Any] = {}
        for attribute, name in _RECORD_API:
            value = getattr(self, attribute)
            if attribute in PART_TYPES:
                value = None if value is None else value.to_api()
            elif attribute == "timestamp":
                value = format_timestamp(value)
            out[name] = value
        return out

    @classmethod
    def from_api(cls, data: object) -> AuditRecord:
        """Validate and rebuild a record from its API JSON object."""
        mapping = _mapping("record", data)
        for required in ("id", "timestamp"):
            if required not in mapping:
                raise InvalidRecordError(required, "is required")
        fields: dict[str, Any] = {}
        for attribute, name in _RECORD_API:
            value = mapping.get(name)
            if attribute == "actor":
                value = Actor.from_api(value)  # required: a missing actor is an error
            elif attribute in PART_TYPES:
                value = None if value is None else PART_TYPES[attribute].from_api(value)
            elif attribute == "timestamp":
                value = parse_timestamp(value)
            elif attribute == "metadata":
                value = value or {}
            fields[attribute] = value
        return cls(**fields)


#: The record's own fields by their API names, the id first (as the identity product shows
#: it; the dataclass declares it last, as it has a default), and the fields that are parts.
_RECORD_API = (("id", "id"), *(pair for pair in api_names(AuditRecord) if pair[0] != "id"))
PART_TYPES: dict[str, type[_Part]] = {
    "actor": Actor,
    "target": Target,
    "request": RequestInfo,
    "trace": TraceInfo,
    "device": DeviceInfo,
    "integrity": IntegrityInfo,
}


def _compiled(source: str, namespace: dict[str, Any]) -> Any:
    exec(compile(source, "<auditwire.record: to_api>", "exec"), namespace)
    return namespace["to_api"]


def _compile_to_api() -> None:
    """Replace the ``to_api`` methods, which loop over the field tables, by straight-line code
    written from the same tables (as :mod:`dataclasses` writes ``__init__``): a record's API
    form is made for every record stored, sealed or exported, and the loops were two thirds
    of its cost. The loops stay as the definition: a test proves both give the same for
    generated records (:data:`REFERENCE_TO_API`)."""
    for kind in PART_TYPES.values():
        lines = "".join(
            f"    value = self.{attribute}\n    if value is not None:\n"
            f"        out[{name!r}] = value\n"
            for attribute, name in kind.API
        )
        source = f"def to_api(self):\n    out = {{}}\n{lines}    return out\n"
        kind.to_api = _compiled(source, {})  # type: ignore[method-assign]
    namespace: dict[str, Any] = {"format_timestamp": format_timestamp}
    entries = []
    for attribute, name in _RECORD_API:
        if attribute in PART_TYPES:
            namespace[f"{attribute}_api"] = PART_TYPES[attribute].to_api
            value = f"None if self.{attribute} is None else {attribute}_api(self.{attribute})"
        elif attribute == "timestamp":
            value = f"format_timestamp(self.{attribute})"
        else:
            value = f"self.{attribute}"
        entries.append(f"        {name!r}: {value},\n")
    source = f"def to_api(self):\n    return {{\n{''.join(entries)}    }}\n"
    AuditRecord.to_api = _compiled(source, namespace)  # type: ignore[method-assign]


#: The ``to_api`` methods as their classes define them, by class (see :func:`_compile_to_api`).
_KINDS: list[type[Any]] = [AuditRecord, *PART_TYPES.values()]
REFERENCE_TO_API: dict[type[Any], Any] = {
    kind: kind.__dict__.get("to_api", _Part.to_api) for kind in _KINDS
}
_compile_to_api()


def _flat_value(record: AuditRecord, path: str) -> str | None:
    head, _, rest = path.partition(".")
    value = getattr(record, head)
    if rest:
        value = None if value is None else getattr(value, rest)
    elif head == "timestamp":
        value = format_timestamp(value)
    return value  # type: ignore[no-any-return]


def flat_fields(record: AuditRecord) -> dict[str, str | None]:
    """The record's scalar fields by their API names (:data:`~auditwire._fields.FLAT_FIELDS`),
    for tabular stores and exports."""
    return {name: _flat_value(record, path) for name, path in FLAT_FIELDS}
