"""Django: one line in ``MIDDLEWARE`` audits every request, with ``request.user`` as the actor.

    MIDDLEWARE = [
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "auditwire.integrations.django.AuditMiddleware",   # after authentication
    ]
    AUDITWIRE = {"store": "sqlite:///auditwire.db", "trusted_proxies": ["10.0.0.0/8"]}

The ``AUDITWIRE`` setting holds the store URL (``store``; default ``$AUDITWIRE_STORE``, else the
embedded default) — or an :class:`~auditwire.AuditLog` built in code (``audit_log``) — and any
of the middleware's options (:class:`~auditwire.capture.options.CaptureOptions`). The record's
route is the URL pattern that matched (``/invoices/<int:n>/void``), and the pattern's
``tenant`` (``tenant_param``) its tenant; its actor is ``request.user`` once the view has run
(so a login view's own user counts) — ``pk``, ``email``, ``get_username()`` — unless the view
named one through ``auditwire.current()``. A redirect of an anonymous user to the login page is
recorded as the refusal it is (``access_denied``, ``failure``), not as a success. The middleware
runs under WSGI and ASGI alike.
"""

from __future__ import annotations

import logging
from typing import Any

from auditwire.audit_log import AuditLog
from auditwire.capture.context import bind, unbind
from auditwire.capture.facts import RequestFacts, read_wsgi_headers
from auditwire.capture.middleware import Capture
from auditwire.capture.records import DENIED_ACTION
from auditwire.errors import InvalidRecordError, MissingDependencyError
from auditwire.record import Actor

__all__ = ["SETTING", "AuditMiddleware", "user_actor"]

logger = logging.getLogger("auditwire")

#: The Django setting that configures the middleware.
SETTING = "AUDITWIRE"


def user_actor(user: Any) -> Actor | None:
    """An authenticated Django user as an actor (``pk``, ``email``, ``get_username()``:
    :meth:`Actor.of`); ``None`` for an anonymous one."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return Actor.of(user)


class AuditMiddleware:
    """The Django middleware (see the module); sync and async capable."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        try:
            from asgiref.sync import iscoroutinefunction, markcoroutinefunction
            from django.conf import settings
        except ImportError:
            raise MissingDependencyError("auditwire.integrations.django", "django") from None
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        options = dict(getattr(settings, SETTING, {}) or {})
        given = options.pop("audit_log", None)
        store = options.pop("store", None)
        self.audit_log = given if isinstance(given, AuditLog) else AuditLog(store)
        self.capture = Capture(self.audit_log.builder, self.audit_log.submit, **options)
        self._login_url = str(getattr(settings, "LOGIN_URL", "") or "")

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        facts = self._begin(request)
        if facts is None:
            return self.get_response(request)
        token = bind(facts)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            facts.error_type = type(exc).__name__
            self.capture.finish(facts)
            raise
        finally:
            unbind(token)
        self._end(request, response, facts, getattr(request, "user", None))
        return response

    async def __acall__(self, request: Any) -> Any:
        facts = self._begin(request)
        if facts is None:
            return await self.get_response(request)
        token = bind(facts)
        try:
            response = await self.get_response(request)
        except BaseException as exc:
            facts.error_type = type(exc).__name__
            self.capture.finish(facts)
            raise
        finally:
            unbind(token)
        # The user is read from the database lazily: in async code, through Django's async API.
        auser = getattr(request, "auser", None)
        user = await auser() if auser is not None else None
        self._end(request, response, facts, user)
        return response

    def _begin(self, request: Any) -> RequestFacts | None:
        """The facts of a request to audit (``None``: not audited)."""
        if not self.capture.wants(request.method or "GET", request.path):
            return None
        options = self.capture.options
        facts = RequestFacts(
            options,
            request.method or "GET",
            request.path,
            read_wsgi_headers,  # Django gives CGI-style META under WSGI and ASGI alike
            request.META.get("REMOTE_ADDR"),
            request.META,
        )
        if options.read_span is not None:
            facts.span_context = options.read_span()
        return facts

    def _end(self, request: Any, response: Any, facts: RequestFacts, user: Any) -> None:
        """After the view: status, route pattern, the user as actor; then hand off."""
        try:
            facts.status = response.status_code
            match = getattr(request, "resolver_match", None)
            if match is not None:
                if facts.route is None and match.route:
                    facts.route = "/" + str(match.route).lstrip("^").rstrip("$")
                tenant = match.kwargs.get(self.capture.options.tenant_param or "")
                if facts.tenant is None and isinstance(tenant, str):
                    facts.tenant = tenant
            if facts.actor is None:
                actor = user_actor(user)
                if actor is not None:
                    facts.set_actor(actor)
            if self._sent_to_login(response, user) and facts.outcome is None:
                facts.outcome = "failure"
                facts.action = facts.action or DENIED_ACTION
        except (InvalidRecordError, AttributeError):
            logger.exception("auditwire: could not read Django's request after the view")
        self.capture.finish(facts)

    def _sent_to_login(self, response: Any, user: Any) -> bool:
        if response.status_code not in (301, 302, 303, 307, 308) or not self._login_url:
            return False
        if user is not None and getattr(user, "is_authenticated", False):
            return False
        location = str(response.get("Location", ""))
        return location.split("?", 1)[0].endswith(self._login_url.split("?", 1)[0])
