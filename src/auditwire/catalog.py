"""The event catalog: which actions exist, their category, message template and ECS class.

auditwire ships every event of the two product pages it models — the billing product's
*Security logs* (``user.invited``, ``api_key.rotated``...; its "log types" are our categories)
and the identity product's *Audit logs* (five categories, ``login_failed``...) — and an
application registers its own. A strict catalog refuses unknown actions; a lenient one (the
default) accepts them with the category the caller gives.

Templates use the billing product's ``{{variable}}`` syntax. A variable is looked up in the
record's metadata first (``{{role.name}}`` reads ``metadata["role"]["name"]``), then in the record
(``{{actor.email}}``, ``{{target.name}}``, ``{{tenant}}``), then through a few aliases that give
the product's own names their meaning: ``{{email}}`` is the actor's email, ``{{emailInvitee}}``
the target's, ``{{***1337}}`` the masked API key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from auditwire.errors import InvalidRecordError, UnknownActionError
from auditwire.redaction import mask_secret

if TYPE_CHECKING:
    from auditwire.record import AuditRecord

#: Rendered in place of a variable the record does not carry: a record is never refused
#: because its message cannot be completed.
MISSING = "(unknown)"
_VARIABLE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")

#: Alias → the record paths tried in order.
ALIASES: Mapping[str, tuple[str, ...]] = {
    "email": ("actor.email", "actor.name", "actor.id"),
    "actor": ("actor.email", "actor.name", "actor.id", "actor.type"),
    "emailInvitor": ("actor.email", "actor.name", "actor.id"),
    "emailInvitee": ("target.email", "target.name", "target.id"),
    "target": ("target.email", "target.name", "target.id"),
    "apiKeyName": ("target.name",),
    "url": ("target.name", "target.id"),
    "role_code": ("target.id", "target.name"),
    "***1337": ("apiKey", "api_key", "target.id"),
}
_MASKED_ALIASES = frozenset({"***1337"})


@dataclass(frozen=True, slots=True)
class EventDefinition:
    """One known action.

    ``ecs_category`` and ``ecs_type`` classify the event for ECS consumers (``event.category``,
    ``event.type``); ``sensitive`` marks security-sensitive changes for dashboards and alerts.
    """

    action: str
    category: str
    template: str
    ecs_category: tuple[str, ...] = ("iam",)
    ecs_type: tuple[str, ...] = ("info",)
    description: str = ""
    sensitive: bool = False
    variables: tuple[str, ...] = field(init=False)
    _parts: tuple[str | _Variable, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "variables", tuple(_VARIABLE.findall(self.template)))
        object.__setattr__(self, "_parts", _compile(self.template))

    def render(self, record: AuditRecord) -> str:
        return _render(self._parts, record)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "category": self.category,
            "template": self.template,
            "variables": list(self.variables),
            "ecs": {"category": list(self.ecs_category), "type": list(self.ecs_type)},
            "sensitive": self.sensitive,
            "description": self.description,
        }


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


#: API JSON names of record fields, for templates written against the API shape.
_ATTRIBUTE = {
    "ipAddress": "ip_address",
    "userAgent": "user_agent",
    "durationMs": "duration_ms",
    "peerIp": "peer_ip",
    "traceId": "trace_id",
    "spanId": "span_id",
    "browserVersion": "browser_version",
    "osVersion": "os_version",
}
_PARTS = frozenset({"actor", "target", "request", "trace", "device"})


_RECORD_FIELDS = frozenset({"tenant", "ip_address", "user_agent", "action", "category", "outcome"})


def _record_field(path: str) -> tuple[str | None, str] | None:
    """Where a scalar field of the record named by its (API) path lives: ``(part, attribute)``
    (``part`` ``None`` for the record's own fields), or ``None`` when the path names no such
    field. Worked out once per template, so rendering serialises nothing and calls nothing."""
    head, _, rest = path.partition(".")
    if head in _PARTS and rest and "." not in rest:
        return head, _ATTRIBUTE.get(rest, rest)
    attribute = _ATTRIBUTE.get(head, head)
    if not rest and attribute in _RECORD_FIELDS:
        return None, attribute
    return None


_Variable = tuple[tuple[str, ...], tuple[tuple[str | None, str], ...], bool]


@lru_cache(maxsize=1024)
def _compile(template: str) -> tuple[str | _Variable, ...]:
    """Literal text and, for each variable, the paths to try in the metadata and the record
    fields to try (for the name, then for each alias), and whether it is masked."""
    parts: list[str | _Variable] = []
    position = 0
    for match in _VARIABLE.finditer(template):
        parts.append(template[position : match.start()])
        name = match.group(1)
        paths = (name, *ALIASES.get(name, ()))
        fields = tuple(f for f in map(_record_field, paths) if f is not None)
        parts.append((paths, fields, name in _MASKED_ALIASES))
        position = match.end()
    parts.append(template[position:])
    return tuple(p for p in parts if p != "")


def _scalar(value: Any) -> bool:
    # Only scalars render: ``{{actor}}`` reaches its alias, not the actor object.
    return isinstance(value, (str, int, float)) and value != ""


def render_template(template: str, record: AuditRecord) -> str:
    """Fill ``{{variables}}`` from the record; see the module docstring for the lookup order
    (metadata first for every candidate path, then the record)."""
    return _render(_compile(template), record)


def _render(parts: tuple[str | _Variable, ...], record: AuditRecord) -> str:
    """A compiled template filled from a record: runs for every record, so it is written for
    speed."""
    out: list[str] = []
    append = out.append
    metadata = record.metadata
    for part in parts:
        if isinstance(part, str):
            append(part)
            continue
        paths, fields, masked = part
        found: Any = None
        if metadata:
            for path in paths:
                value = _lookup(metadata, path)
                if _scalar(value):
                    found = value
                    break
        if found is None:
            for head, attribute in fields:
                owner = record if head is None else getattr(record, head)
                value = getattr(owner, attribute, None)
                if value is not None and value != "" and isinstance(value, (str, int, float)):
                    found = value
                    break
        if found is None:
            append(MISSING)
            continue
        text = found if type(found) is str else str(found)
        append(mask_secret(text) if masked else text)
    return "".join(out)


def _events(
    category: str,
    ecs_category: str,
    rows: Iterable[tuple[str, str, tuple[str, ...]]],
    *,
    sensitive: bool = False,
    override_ecs: Mapping[str, str] | None = None,
) -> list[EventDefinition]:
    return [
        EventDefinition(
            action=action,
            category=category,
            template=template,
            ecs_category=((override_ecs or {}).get(action, ecs_category),),
            ecs_type=ecs_type,
            sensitive=sensitive,
        )
        for action, template, ecs_type in rows
    ]


_USER, _CREATE, _CHANGE, _DELETE = ("user",), ("creation",), ("change",), ("deletion",)

#: The billing product's Security logs, every event key with its message template.
SECURITY_LOG_EVENTS: tuple[EventDefinition, ...] = (
    *_events(
        "user",
        "iam",
        [
            ("user.signed_up", "{{email}} joined", ("user", "creation")),
            (
                "user.new_device_logged_in",
                "{{email}} successfully logged in using a new device",
                ("start",),
            ),
            ("user.deleted", "{{email}} deleted", ("user", "deletion")),
            ("user.invited", "{{emailInvitee}} was invited by {{emailInvitor}}", _USER + _CREATE),
            # The page's "{{email}}'s role was edited to {{role.name}} by {{email}}" uses one
            # name for two people; the first is the member edited, the second the editor.
            (
                "user.role_edited",
                "{{target.email}}'s role was edited to {{role.name}} by {{actor.email}}",
                _USER + _CHANGE,
            ),
            (
                "user.password_reset_requested",
                "{{email}} requested to change password",
                _USER + _CHANGE,
            ),
            ("user.password_edited", "{{email}} password edited", _USER + _CHANGE),
        ],
        sensitive=True,
        override_ecs={"user.new_device_logged_in": "authentication"},
    ),
    *_events(
        "role",
        "iam",
        [
            ("role.created", "{{email}} added a new role {{role_code}}", ("group", "creation")),
            ("role.updated", "{{email}} updated the role {{role_code}}", ("group", "change")),
            ("role.deleted", "{{email}} deleted the role {{role_code}}", ("group", "deletion")),
        ],
        sensitive=True,
    ),
    *_events(
        "api_key",
        "iam",
        [
            (
                "api_key.created",
                "An API key {{apiKeyName}} ending with {{***1337}} was created",
                _CREATE,
            ),
            (
                "api_key.updated",
                "The API key {{apiKeyName}} ending with {{***1337}} was updated",
                _CHANGE,
            ),
            (
                "api_key.deleted",
                "The API key {{apiKeyName}} ending with {{***1337}} was deleted",
                _DELETE,
            ),
            (
                "api_key.rotated",
                "The API key {{apiKeyName}} ending with {{***1337}} was rotated",
                _CHANGE,
            ),
        ],
        sensitive=True,
    ),
    *_events(
        "webhook_endpoint",
        "configuration",
        [
            ("webhook_endpoint.created", "A new webhook endpoint {{url}} was created", _CREATE),
            ("webhook_endpoint.updated", "A webhook endpoint {{url}} was updated", _CHANGE),
            ("webhook_endpoint.deleted", "A webhook endpoint {{url}} was deleted", _DELETE),
        ],
        sensitive=True,
    ),
    *_events("export", "database", [("export.created", "{{email}} exported data", ("access",))]),
    *_events(
        "integration",
        "configuration",
        [
            (
                "integration.created",
                "{{email}} created a new {{integration.name}} integration",
                _CREATE,
            ),
            (
                "integration.updated",
                "{{email}} updated the {{integration.name}} integration",
                _CHANGE,
            ),
            (
                "integration.deleted",
                "{{email}} deleted the {{integration.name}} integration",
                _DELETE,
            ),
        ],
    ),
    *_events(
        "billing_entity",
        "configuration",
        [
            (
                "billing_entity.created",
                "{{email}} created a new billing entity {{billingEntity.name}}",
                _CREATE,
            ),
            (
                "billing_entity.updated",
                "{{email}} updated the billing entity {{billingEntity.name}}",
                _CHANGE,
            ),
        ],
    ),
)

#: The identity product's Audit logs: five categories and their actions. The page gives no
#: message templates, so these are auditwire's own.
AUDIT_LOG_EVENTS: tuple[EventDefinition, ...] = (
    *_events(
        "authentication",
        "authentication",
        [
            ("login", "{{actor}} logged in", ("start",)),
            ("logout", "{{actor}} logged out", ("end",)),
            ("login_failed", "Failed login for {{actor}}", ("start",)),
            ("mfa_verified", "{{actor}} verified a second factor", ("info",)),
            ("password_reset", "{{actor}} reset the password of {{target}}", ("info",)),
        ],
        sensitive=True,
    ),
    *_events(
        "authorization",
        "iam",
        [
            ("permission_check", "Permission {{permission}} checked for {{actor}}", ("access",)),
            ("access_denied", "{{actor}} was denied access to {{target}}", ("denied",)),
            ("role_assigned", "{{actor}} assigned role {{role}} to {{target}}", _USER + _CHANGE),
        ],
        sensitive=True,
        override_ecs={"permission_check": "api", "access_denied": "api"},
    ),
    *_events(
        "user_management",
        "iam",
        [
            ("user_created", "{{actor}} created user {{target}}", _USER + _CREATE),
            ("user_updated", "{{actor}} updated user {{target}}", _USER + _CHANGE),
            ("user_deleted", "{{actor}} deleted user {{target}}", _USER + _DELETE),
            ("user_blocked", "{{actor}} blocked user {{target}}", _USER + _CHANGE),
        ],
        sensitive=True,
    ),
    *_events(
        "token_management",
        "iam",
        [
            ("token_issued", "A token was issued to {{target}} by {{actor}}", _CREATE),
            ("token_revoked", "A token of {{target}} was revoked by {{actor}}", _DELETE),
            ("token_refreshed", "A token of {{target}} was refreshed", _CHANGE),
        ],
        sensitive=True,
    ),
    *_events(
        "configuration",
        "configuration",
        [
            ("settings_changed", "{{actor}} changed settings", _CHANGE),
            ("webhook_created", "{{actor}} created webhook {{target}}", _CREATE),
            ("policy_updated", "{{actor}} updated policy {{target}}", _CHANGE),
        ],
        sensitive=True,
    ),
)
#: auditwire's own events: an audited request nobody named, and reading the log (which is
#: itself audited).
AUDITWIRE_EVENTS: tuple[EventDefinition, ...] = (
    EventDefinition(
        action="http.request",
        category="http",
        template="{{request.method}} {{request.path}} by {{actor}}",
        ecs_category=("web",),
        ecs_type=("access",),
    ),
    EventDefinition(
        action="audit_log.read",
        category="audit_log",
        template="{{actor}} read the audit log",
        ecs_category=("database",),
        ecs_type=("access",),
        sensitive=True,
    ),
)


class EventCatalog:
    """The known actions of an application.

    ``strict=True`` refuses actions that were never registered (typos then fail in tests, not
    in an audit review); the default accepts them, with the category the caller passes.
    """

    __slots__ = ("_events", "strict")

    def __init__(self, events: Iterable[EventDefinition] = (), *, strict: bool = False) -> None:
        self.strict = strict
        self._events: dict[str, EventDefinition] = {}
        for event in events:
            self.register(event)

    @classmethod
    def default(cls, *, strict: bool = False) -> EventCatalog:
        """Every event of both product pages plus auditwire's own."""
        return cls((*SECURITY_LOG_EVENTS, *AUDIT_LOG_EVENTS, *AUDITWIRE_EVENTS), strict=strict)

    def register(
        self,
        event: EventDefinition | str,
        *,
        category: str | None = None,
        template: str | None = None,
        ecs_category: Iterable[str] = ("iam",),
        ecs_type: Iterable[str] = ("info",),
        sensitive: bool = False,
        replace: bool = False,
    ) -> EventDefinition:
        """Add an event; pass a definition, or an action name with its category and template."""
        from auditwire.record import _name  # the same name rules as records

        if isinstance(event, str):
            if category is None:
                raise InvalidRecordError("category", f"is required to register {event!r}")
            event = EventDefinition(
                action=event,
                category=category,
                template=template if template is not None else event,
                ecs_category=tuple(ecs_category),
                ecs_type=tuple(ecs_type),
                sensitive=sensitive,
            )
        _name("action", event.action)
        _name("category", event.category)
        if event.action in self._events and not replace:
            raise ValueError(f"action {event.action!r} is already registered (pass replace=True)")
        self._events[event.action] = event
        return event

    def get(self, action: str) -> EventDefinition | None:
        return self._events.get(action)

    def resolve(self, action: str) -> EventDefinition | None:
        """The definition of ``action``; ``None`` when unknown and lenient, an error when strict."""
        event = self._events.get(action)
        if event is None and self.strict:
            raise UnknownActionError(action)
        return event

    @property
    def categories(self) -> list[str]:
        return sorted({e.category for e in self._events.values()})

    def __contains__(self, action: object) -> bool:
        return action in self._events

    def __iter__(self) -> Iterator[EventDefinition]:
        return iter(self._events.values())

    def __len__(self) -> int:
        return len(self._events)

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self]
