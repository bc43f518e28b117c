"""A finished request's facts become its audit record.

Run when the hand-off builds a batch, after the response has gone out. The record's parts are
valid by construction (validated when a handler set them, or made valid from the request by
:mod:`~auditwire.capture.facts`), so it is built by
:meth:`~auditwire.builder.RecordBuilder.build_trusted`. Invalid handler input cannot get this
far; anything else that goes wrong degrades the record instead of losing it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from auditwire.builder import RecordBuilder
from auditwire.capture.devices import new_device_login
from auditwire.capture.facts import RequestFacts
from auditwire.capture.options import Options
from auditwire.capture.trace import trace_info
from auditwire.errors import InvalidRecordError
from auditwire.record import (
    MAX_EMAIL,
    MAX_TEXT,
    Actor,
    AuditRecord,
    DeviceInfo,
    Outcome,
    RequestInfo,
    check_text,
)

__all__ = [
    "ANONYMOUS",
    "DEFAULT_ACTION",
    "DENIED_ACTION",
    "MAX_HEADER_VALUE",
    "RecordMaker",
    "scope_user",
]

logger = logging.getLogger("auditwire")

#: The action of an audited request whose handler named none.
DEFAULT_ACTION = "http.request"
#: The action of a 401/403 answer whose handler named none.
DENIED_ACTION = "access_denied"
#: The actor of a request nobody authenticated.
ANONYMOUS = Actor(type="user", name="anonymous")
#: Captured header values are cut to this many characters.
MAX_HEADER_VALUE = 256


def _kept(field: str, value: str | None, dropped: dict[str, str]) -> str | None:
    """``value`` if a record can carry it as ``field``, else ``None``, the reason noted."""
    if value is None:
        return None
    try:
        check_text(field, value, MAX_TEXT)
    except InvalidRecordError as exc:
        dropped[field] = exc.problem
        return None
    return value


def _text_or_none(value: object, limit: int) -> str | None:
    """A user object's attribute as the actor's text, cut to ``limit``; dropped when it holds
    a NUL, which no record carries."""
    if value is None:
        return None
    text = str(value)[:limit]
    return None if "\x00" in text else text


def scope_user(source: Any) -> Actor | None:
    """The actor an ASGI authentication middleware left in ``scope["user"]`` (Starlette's
    ``BaseUser``: ``is_authenticated``, ``identity``, ``display_name``)."""
    user = source.get("user") if isinstance(source, dict) else None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    identity = getattr(user, "identity", None) or getattr(user, "id", None)
    name = getattr(user, "display_name", None) or getattr(user, "username", None)
    email = getattr(user, "email", None)
    if not isinstance(email, str) or len(email) > MAX_EMAIL:
        email = None  # a cut email would name someone else
    return Actor(
        type="user",
        id=_text_or_none(identity, MAX_TEXT),
        email=_text_or_none(email, MAX_EMAIL),
        name=_text_or_none(name, MAX_TEXT),
    )


class RecordMaker:
    """Makes the records of finished requests by ``options``, through ``builder``."""

    __slots__ = ("builder", "options")

    def __init__(self, options: Options, builder: RecordBuilder) -> None:
        self.options = options
        self.builder = builder

    def records(self, facts: RequestFacts) -> list[AuditRecord]:
        """The records of a finished request: its own, and a new-device login when one is
        detected. Then the facts let go of the request's scope."""
        try:
            try:
                record = self._record(facts)
            except InvalidRecordError as exc:
                logger.error("auditwire: degraded an audit record: %s", exc)
                record = self._degraded(facts, exc)
            records = [record]
            devices = self.options.devices
            if devices is not None:
                login = new_device_login(
                    self.builder, devices, self.options.login_actions, record, facts.device_id
                )
                if login is not None:
                    records.append(login)
            return records
        finally:
            facts.release()

    def _path_tenant(self, source: Any) -> str | None:
        param = self.options.tenant_param
        if param is None or not isinstance(source, dict):
            return None
        tenant = (source.get("path_params") or {}).get(param)
        return tenant if isinstance(tenant, str) else None

    @staticmethod
    def _outcome(facts: RequestFacts) -> Outcome:
        if facts.outcome is not None:
            return facts.outcome
        if facts.error_type is not None or facts.disconnected:
            return "error"
        status = facts.status or 500
        if status >= 500:
            return "error"
        return "failure" if status >= 400 else "success"

    @staticmethod
    def _request_info(facts: RequestFacts) -> RequestInfo:
        status = facts.status
        if facts.disconnected and status is None:
            status = 499  # the client closed the connection before an answer
        elif facts.error_type is not None and status is None:
            status = 500
        return facts.request_info(
            status=status if isinstance(status, int) and 100 <= status <= 599 else None,
            duration_ms=facts.duration_ns // 1000 / 1000,  # whole µs: what round(_, 3) keeps
        )

    def _metadata(self, facts: RequestFacts, *, with_headers: bool = True) -> dict[str, Any]:
        metadata = dict(facts.metadata)
        if facts.error_type is not None:
            metadata["error"] = {"type": facts.error_type}
        if facts.disconnected:
            metadata["disconnected"] = True
        capture_headers = self.options.capture_headers
        if capture_headers and with_headers:
            headers = facts.headers()
            captured = {
                name: headers[name][0][:MAX_HEADER_VALUE]
                for name in capture_headers
                if name in headers
            }
            if captured:
                metadata["headers"] = captured
        return metadata

    def _record(self, facts: RequestFacts) -> AuditRecord:
        options = self.options
        route = facts.route_template()
        action = facts.action
        if action is None and options.actions:
            action = options.actions.get((facts.method, route or ""))
        if action is None:
            action = DENIED_ACTION if facts.status in (401, 403) else DEFAULT_ACTION
        user_agent = facts.user_agent
        parser = options.user_agents
        device = parser.parse(user_agent) if parser is not None and user_agent else None
        if facts.device_id is not None:
            device = replace(device or DeviceInfo(), id=facts.device_id)
        span = facts.span_context
        # What a request or a hook supplied unchecked is dropped alone when no record could
        # carry it, and the drop noted; the actor, action and the rest stay.
        dropped: dict[str, str] = {}
        tenant = _kept("tenant", facts.tenant or self._path_tenant(facts.source), dropped)
        metadata = self._metadata(facts)

        def build(metadata: dict[str, Any]) -> AuditRecord:
            if dropped:
                metadata = {**metadata, "auditwire": {"dropped": dict(dropped)}}
            return self.builder.build_trusted(
                action,
                actor=facts.actor or scope_user(facts.source) or ANONYMOUS,
                target=facts.target,
                outcome=self._outcome(facts),
                metadata=metadata,
                category=facts.category,
                ip_address=facts.ip_address,
                user_agent=user_agent,
                tenant=tenant,
                timestamp=facts.started(),
                request=self._request_info(facts),
                trace=None if span is None else trace_info(span),
                device=device,
            )

        try:
            return build(metadata)
        except InvalidRecordError as exc:
            if not exc.field.startswith("metadata"):
                raise
            problem = exc.problem[:200]
        if "headers" in metadata:  # too large once the captured headers were added
            dropped["headers"] = problem
            try:
                return build(self._metadata(facts, with_headers=False))
            except InvalidRecordError as exc:
                if not exc.field.startswith("metadata"):
                    raise
                problem = exc.problem[:200]
        dropped["metadata"] = problem
        return build({})

    def _degraded(self, facts: RequestFacts, error: InvalidRecordError) -> AuditRecord:
        return self.builder.build(
            DEFAULT_ACTION,
            actor=ANONYMOUS,
            outcome=self._outcome(facts),
            metadata={"auditwire": {"capture_error": str(error)[:500]}},
            timestamp=facts.started(),
            request=self._request_info(facts),
            ip_address=facts.ip_address,
        )
