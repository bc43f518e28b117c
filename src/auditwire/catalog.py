"""The event catalog: which actions exist, their category, message template and ECS class.

auditwire ships every event of the two product pages it models — the billing product's
*Security logs* (``user.invited``, ``api_key.rotated``...; its "log types" are our categories)
and the identity product's *Audit logs* (five categories, ``login_failed``...) — and an
application registers its own. A strict catalog refuses unknown actions; a lenient one (the
default) accepts them with the category the caller gives.

The events themselves are data (:mod:`auditwire.events`); their message templates use the
billing product's ``{{variable}}`` syntax (:mod:`auditwire._templates`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from auditwire.errors import InvalidRecordError, UnknownActionError
from auditwire.events import (
    AUDIT_LOG_EVENTS,
    AUDITWIRE_EVENTS,
    SECURITY_LOG_EVENTS,
    EventDefinition,
)
from auditwire.record import check_name

__all__ = ["EventCatalog", "EventDefinition"]


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
        check_name("action", event.action)  # the same name rules as records
        check_name("category", event.category)
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

    @staticmethod
    def default_category(action: str) -> str:
        """The category of an action outside a lenient catalog, given none: the part before
        its first dot, as the billing product names its log types (``invoice.voided`` is an
        ``invoice`` event), else ``other``. A record is never refused for lacking one."""
        prefix, dot, _ = action.partition(".")
        return prefix if dot and prefix else "other"

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
