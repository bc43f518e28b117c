"""Records from what a caller knows: the catalog's category and message, redaction, defaults.

:class:`RecordBuilder` owns the rules every record follows whoever makes it — the explicit API,
the middleware, the logging integrations: an action's category comes from the catalog (and a
contradicting one is refused), metadata is redacted and must be JSON, the message is the
catalog's template rendered against the record, and a log bound to a tenant stamps its records
with it.

There are two ways in. :meth:`RecordBuilder.build` validates everything (any caller's input).
:meth:`RecordBuilder.build_trusted` is for captured requests, whose parts are valid by
construction: it checks only what a hook or handler could leave unchecked (the tenant, the
metadata) and builds through :mod:`auditwire._fastpath`; anything unusual (an action outside
the catalog, a contradicting category) takes the validating path. Both give the same record for
the same input — a property test holds them to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

from auditwire._fastpath import set_message, trusted_record
from auditwire.catalog import EventCatalog
from auditwire.errors import InvalidRecordError
from auditwire.record import (
    EMPTY_DEVICE,
    EMPTY_REQUEST,
    MAX_TEXT,
    Actor,
    AuditRecord,
    Target,
    check_text,
    normalise_metadata,
)
from auditwire.redaction import Redactor

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from auditwire.record import DeviceInfo, Outcome, RequestInfo, TraceInfo

__all__ = ["SYSTEM", "RecordBuilder", "RecordFields"]

#: The actor of a record nobody acted in: the application itself (records are immutable, so
#: one instance serves them all).
SYSTEM = Actor.system()


def _actor(actor: object) -> Actor:
    return Actor.of(actor) or SYSTEM


def _target(target: Target | Mapping[str, Any] | None) -> Target | None:
    if target is None or isinstance(target, Target):
        return target
    return Target.from_api(target)


class RecordFields(TypedDict, total=False):
    """The fields a caller gives a record besides its action (all optional): who acted on
    what, with what outcome, and the request's details. ``category`` files an action outside the
    catalog (by default, :meth:`EventCatalog.default_category`); ``message`` overrides the
    catalog's template."""

    #: An :class:`Actor`, a mapping, an id, or a user object (:meth:`Actor.of`).
    actor: object
    target: Target | Mapping[str, Any] | None
    outcome: Outcome
    metadata: Mapping[str, Any] | None
    category: str | None
    ip_address: str | None
    user_agent: str | None
    tenant: str | None
    timestamp: datetime | None
    message: str | None
    request: RequestInfo | None
    trace: TraceInfo | None
    device: DeviceInfo | None


class RecordBuilder:
    """Builds records by ``catalog``'s rules, redacting metadata with ``redactor``; records
    without a tenant get ``tenant`` (a log bound to one tenant)."""

    __slots__ = ("catalog", "redactor", "tenant")

    def __init__(
        self,
        catalog: EventCatalog,
        redactor: Redactor | None = None,
        *,
        tenant: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.redactor = redactor if redactor is not None else Redactor()
        self.tenant = tenant

    def build(self, action: str, **fields: Unpack[RecordFields]) -> AuditRecord:
        """A validated record with the catalog's category and rendered message."""
        unknown = fields.keys() - RecordFields.__annotations__.keys()
        if unknown:
            raise TypeError(f"unknown record field(s): {', '.join(sorted(unknown))}")
        if not isinstance(action, str) or not action:
            raise InvalidRecordError("action", "is required")
        category = fields.get("category")
        metadata = fields.get("metadata")
        timestamp = fields.get("timestamp")
        message = fields.get("message")
        tenant = fields.get("tenant")
        event = self.catalog.resolve(action)
        if event is not None and category is not None and category != event.category:
            raise InvalidRecordError(
                "category",
                f"{category!r} contradicts the catalog, which files {action!r} under "
                f"{event.category!r}",
            )
        if event is not None:
            category = event.category
        elif category is None:
            category = self.catalog.default_category(action)
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidRecordError(
                "metadata", f"must be a mapping, not {type(metadata).__name__}"
            )
        extra: dict[str, Any] = {}
        if timestamp is not None:
            extra["timestamp"] = timestamp
        record = AuditRecord(
            action=action,
            category=category,
            actor=_actor(fields.get("actor")),
            target=_target(fields.get("target")),
            outcome=fields.get("outcome", "success"),
            ip_address=fields.get("ip_address"),
            user_agent=fields.get("user_agent"),
            metadata=self.redactor.redact(metadata or {}),
            message=message,
            tenant=tenant if tenant is not None else self.tenant,
            request=fields.get("request"),
            trace=fields.get("trace"),
            device=fields.get("device"),
            **extra,
        )
        if message is None and event is not None:
            set_message(record, event.render(record))
        return record

    def build_trusted(
        self,
        action: str,
        *,
        actor: Actor,
        target: Target | None,
        outcome: Outcome,
        metadata: dict[str, Any],
        category: str | None,
        ip_address: str | None,
        user_agent: str | None,
        tenant: str | None,
        timestamp: datetime,
        request: RequestInfo,
        trace: TraceInfo | None,
        device: DeviceInfo | None,
    ) -> AuditRecord:
        """:meth:`build` for parts that are valid by construction (see the module): the
        address canonical, the user agent sanitised, the timestamp at record precision, the
        action a valid name, the parts validated objects. Only the tenant and the metadata are
        checked."""
        event = self.catalog.resolve(action)
        if event is None or (category is not None and category != event.category):
            return self.build(
                action, actor=actor, target=target, outcome=outcome, metadata=metadata,
                category=category, ip_address=ip_address, user_agent=user_agent, tenant=tenant,
                timestamp=timestamp, request=request, trace=trace, device=device,
            )  # fmt: skip
        if tenant is None:
            tenant = self.tenant
        else:
            check_text("tenant", tenant, MAX_TEXT)
        record = trusted_record(
            action,
            event.category,
            actor,
            target,
            outcome,
            ip_address,
            user_agent,
            normalise_metadata(self.redactor.redact(metadata)) if metadata else {},
            timestamp,
            tenant,
            None if request.id is None and request == EMPTY_REQUEST else request,
            trace,
            None if device is not None and device.browser is None and device == EMPTY_DEVICE
            else device,
        )  # fmt: skip
        set_message(record, event.render(record))
        return record
