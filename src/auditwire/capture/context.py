"""The per-request audit context that handlers fill in.

The middleware creates one :class:`AuditContext` per request and makes it current before
calling the application. A handler that learns who the actor is only after authenticating, or
that wants to name the request's action (``api_key.rotated``) and add a target and metadata,
changes that object: ``auditwire.current().set_actor(...)``. Changing a context *variable*
inside a handler would not work — such changes do not flow back to the middleware that set it
— but changes to the object it holds do.

Values are validated when they are set, so a mistake surfaces in the handler that made it, not
later in a background thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Protocol

from auditwire.errors import InvalidRecordError
from auditwire.record import (
    OUTCOMES,
    Actor,
    ActorType,
    Outcome,
    Target,
    check_name,
    normalise_metadata,
)

if TYPE_CHECKING:
    from auditwire.catalog import EventCatalog

__all__ = ["AuditContext", "CapturedRequest", "bind", "current", "unbind"]


class CapturedRequest(Protocol):
    """What a captured request offers to records made during it (log calls, API reads)."""

    def record_fields(self) -> dict[str, Any]:
        """The record's fields the request tells: client IP, user agent, request, trace."""
        ...


class AuditContext:
    """What the application tells auditwire about the current request."""

    __slots__ = (
        "_catalog",
        "action",
        "actor",
        "category",
        "device_id",
        "logged",
        "metadata",
        "outcome",
        "route",
        "skipped",
        "target",
        "tenant",
    )

    def __init__(self, catalog: EventCatalog | None = None) -> None:
        self._catalog = catalog
        self.action: str | None = None
        self.category: str | None = None
        self.actor: Actor | None = None
        self.target: Target | None = None
        self.metadata: dict[str, Any] = {}
        self.outcome: Outcome | None = None
        self.tenant: str | None = None
        self.device_id: str | None = None
        self.route: str | None = None
        self.skipped = False
        #: How many audit records log calls made during the request: such a request needs
        #: no generic record of its own.
        self.logged = 0

    def set_actor(
        self,
        actor: object = None,
        /,
        *,
        type: ActorType = "user",
        id: str | int | None = None,
        email: str | None = None,
        name: str | None = None,
    ) -> Actor:
        """Who is acting: an :class:`Actor`, a mapping, an id, a user object
        (:meth:`Actor.of`), or its fields as keywords."""
        named = Actor.of(actor) or Actor(type=type, id=id, email=email, name=name)  # type: ignore[arg-type]
        self.actor = named
        return named

    def set_action(
        self,
        action: str,
        *,
        target: Target | Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        category: str | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        """Name the audit event this request is (and optionally its target and details)."""
        check_name("action", action)
        if self._catalog is not None:
            self._catalog.resolve(action)  # a strict catalog refuses unknown actions here
        self.action = action
        if category is not None:
            self.category = check_name("category", category)
        if target is not None:
            self.set_target(target)
        if metadata:
            self.add_metadata(metadata)
        if outcome is not None:
            self.set_outcome(outcome)

    def set_target(self, target: Target | Mapping[str, Any]) -> Target:
        self.target = target if isinstance(target, Target) else Target.from_api(target)
        return self.target

    def add_metadata(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Merge details into the record's metadata (validated as JSON now)."""
        merged = {**self.metadata, **(values or {}), **more}
        normalise_metadata(merged)
        self.metadata = merged

    def set_outcome(self, outcome: Outcome) -> None:
        """Override the outcome the status code implies (e.g. a 200 that reports a refusal)."""
        if outcome not in OUTCOMES:
            raise InvalidRecordError("outcome", f"{outcome!r} is not one of {', '.join(OUTCOMES)}")
        self.outcome = outcome

    def skip(self) -> None:
        """Do not record this request."""
        self.skipped = True

    @property
    def request(self) -> CapturedRequest | None:
        """The captured request (client IP, user agent, request id), for log enrichment;
        ``None`` for a context made outside the middleware."""
        return None


_current: ContextVar[AuditContext | None] = ContextVar("auditwire_context", default=None)


def current() -> AuditContext | None:
    """The audit context of the request being handled, or ``None`` outside one."""
    return _current.get()


def bind(context: AuditContext) -> Token[AuditContext | None]:
    return _current.set(context)


def unbind(token: Token[AuditContext | None]) -> None:
    _current.reset(token)
