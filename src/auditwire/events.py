"""What an event is (:class:`EventDefinition`), and the events auditwire ships: every event of
the billing product's *Security logs* and of the identity product's *Audit logs*, and
auditwire's own. Data: the catalog (:mod:`auditwire.catalog`) is what applications use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from auditwire._templates import Compiled, compile_renderer, compile_template, variables

if TYPE_CHECKING:
    from auditwire.record import AuditRecord

__all__ = ["AUDITWIRE_EVENTS", "AUDIT_LOG_EVENTS", "SECURITY_LOG_EVENTS", "EventDefinition"]


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
    compiled: Compiled = field(init=False, repr=False, compare=False)
    renderer: Callable[[AuditRecord], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "variables", variables(self.template))
        object.__setattr__(self, "compiled", compile_template(self.template))
        object.__setattr__(self, "renderer", compile_renderer(self.template))

    def render(self, record: AuditRecord) -> str:
        return self.renderer(record)

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


def _group(
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
    *_group(
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
    *_group(
        "role",
        "iam",
        [
            ("role.created", "{{email}} added a new role {{role_code}}", ("group", "creation")),
            ("role.updated", "{{email}} updated the role {{role_code}}", ("group", "change")),
            ("role.deleted", "{{email}} deleted the role {{role_code}}", ("group", "deletion")),
        ],
        sensitive=True,
    ),
    *_group(
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
    *_group(
        "webhook_endpoint",
        "configuration",
        [
            ("webhook_endpoint.created", "A new webhook endpoint {{url}} was created", _CREATE),
            ("webhook_endpoint.updated", "A webhook endpoint {{url}} was updated", _CHANGE),
            ("webhook_endpoint.deleted", "A webhook endpoint {{url}} was deleted", _DELETE),
        ],
        sensitive=True,
    ),
    *_group("export", "database", [("export.created", "{{email}} exported data", ("access",))]),
    *_group(
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
    *_group(
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
    *_group(
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
    *_group(
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
    *_group(
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
    *_group(
        "token_management",
        "iam",
        [
            ("token_issued", "A token was issued to {{target}} by {{actor}}", _CREATE),
            ("token_revoked", "A token of {{target}} was revoked by {{actor}}", _DELETE),
            ("token_refreshed", "A token of {{target}} was refreshed", _CHANGE),
        ],
        sensitive=True,
    ),
    *_group(
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
#: auditwire's own events: an audited request nobody named, reading the log (which is itself
#: audited) and the log's integrity checkpoints.
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
    EventDefinition(
        action="audit_log.checkpoint",
        category="audit_log",
        template="auditwire vouched for the audit log so far",
        ecs_category=("database",),
        ecs_type=("info",),
    ),
)
