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

:func:`audit_log_urls` serves the audit-log API (the routes of :mod:`auditwire.web`, with the
same rules) in the URLconf, its reads recorded as ``request.user``:

    path("t/<str:tenant>/api/v1/admin/", include(audit_log_urls()))
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from auditwire.audit_log import AuditLog
from auditwire.capture.context import bind, current, unbind
from auditwire.capture.facts import RequestFacts, read_wsgi_headers
from auditwire.capture.middleware import Capture
from auditwire.capture.records import DENIED_ACTION
from auditwire.errors import InvalidRecordError, MissingDependencyError
from auditwire.listing.api import Caller, Operation
from auditwire.record import Actor
from auditwire.web import audit_log_api, read_recorder, user_tenant

__all__ = [
    "SETTING",
    "AuditMiddleware",
    "audit_log_urls",
    "configured_audit_log",
    "superuser",
    "user_actor",
]

logger = logging.getLogger("auditwire")

#: The Django setting that configures the middleware.
SETTING = "AUDITWIRE"


def user_actor(user: Any) -> Actor | None:
    """An authenticated Django user as an actor (``pk``, ``email``, ``get_username()``:
    :meth:`Actor.of`); ``None`` for an anonymous one."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return Actor.of(user)


_configured: dict[str, AuditLog] = {}
_configured_lock = threading.Lock()


def _setting() -> dict[str, Any]:
    try:
        from django.conf import settings
    except ImportError:
        raise MissingDependencyError("auditwire.integrations.django", "django") from None
    return dict(getattr(settings, SETTING, {}) or {})


def configured_audit_log() -> AuditLog:
    """The audit log the ``AUDITWIRE`` setting names: its ``audit_log``, else one on its
    ``store`` URL, made once per process — the middleware and the API views share it."""
    options = _setting()
    given = options.get("audit_log")
    if isinstance(given, AuditLog):
        return given
    store = options.get("store")
    with _configured_lock:
        log = _configured.get(str(store))
        if log is None:
            log = _configured[str(store)] = AuditLog(store)
        return log


def superuser(request: Any) -> bool:
    """The API's default permission: an active superuser."""
    user = getattr(request, "user", None)
    return bool(getattr(user, "is_active", False) and getattr(user, "is_superuser", False))


def audit_log_urls(
    audit_log: AuditLog | None = None,
    *,
    permission: Callable[[Any], bool] = superuser,
    tenant_of: Callable[[Any], str | None] | None = None,
    all_tenants: Callable[[Any], bool] | None = None,
    caller_of: Callable[[Any], object] | None = None,
    tenant_param: str = "tenant",
    mounted_at: str = "/t/{tenant}/api/v1/admin",
) -> list[Any]:
    """The audit-log API as URL patterns to ``include()``: the routes, rules and answers of
    :func:`auditwire.web.audit_log_routes`, over ``audit_log`` (by default the one the
    ``AUDITWIRE`` setting configures). Include them under a prefix, with ``<str:tenant>`` for
    per-tenant URLs.

    Every hook takes Django's ``request``. ``permission`` says who may read audit logs at all
    (by default an active superuser); ``tenant_of`` tells the caller's tenant, which must be
    the URL's (by default ``request.user.tenant`` when it is text); callers for whom
    ``all_tenants`` answers true read any tenant. ``caller_of`` names the reader in the
    records of reads (by default ``request.user``). The export is a ``POST``: Django's CSRF
    protection applies to it as to any form."""
    try:
        from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
        from django.urls import path
        from django.views.decorators.http import require_http_methods
    except ImportError:
        raise MissingDependencyError("auditwire.integrations.django", "django") from None
    log = audit_log or configured_audit_log()
    api = audit_log_api(log, mounted_at)

    def own_tenant(request: Any) -> str | None:
        if tenant_of is not None:
            return tenant_of(request)
        return user_tenant(getattr(request, "user", None))

    def view(operation: Operation, method: str) -> Callable[..., Any]:
        def answer(request: Any, **kwargs: Any) -> Any:
            caller = Caller.asking(request, permission, own_tenant, all_tenants)

            def reader() -> object:
                if caller_of is not None:
                    return caller_of(request)
                return getattr(request, "user", None)

            url_tenant = kwargs.get(tenant_param)
            answered = api.answer(
                operation,
                caller,
                read_recorder(log, reader, request.META.get("REMOTE_ADDR")),
                url_tenant=url_tenant if isinstance(url_tenant, str) else None,
                params=request.GET,
                log_id=str(kwargs.get("log_id", "")),
                body=request.body if operation == "export" else b"",
            )
            if isinstance(answered.body, Mapping):
                response: Any = JsonResponse(dict(answered.body), status=answered.status)
            elif isinstance(answered.body, str):
                response = HttpResponse(
                    answered.body, status=answered.status, content_type=answered.media_type
                )
            else:
                response = StreamingHttpResponse(
                    answered.body, status=answered.status, content_type=answered.media_type
                )
            for header, value in answered.headers.items():
                response[header] = value
            return response

        allowed: Callable[..., Any] = require_http_methods([method])(answer)
        return allowed

    return [
        path("openapi.json", view("openapi", "GET"), name="auditwire-openapi"),
        path("audit-logs", view("list", "GET"), name="auditwire-audit-logs"),
        path(
            "audit-logs/aggregations",
            view("aggregations", "GET"),
            name="auditwire-aggregations",
        ),
        path("audit-logs/export", view("export", "POST"), name="auditwire-export"),
        path("audit-logs/<str:log_id>", view("get", "GET"), name="auditwire-audit-log"),
        path("security_logs", view("security_logs", "GET"), name="auditwire-security-logs"),
        path("viewer", view("viewer", "GET"), name="auditwire-viewer"),
        path("viewer/export", view("viewer_export", "GET"), name="auditwire-viewer-export"),
        path("viewer/<str:log_id>", view("viewer_record", "GET"), name="auditwire-viewer-record"),
    ]


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
        options = _setting()
        options.pop("audit_log", None)
        options.pop("store", None)
        self.audit_log = configured_audit_log()
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

    def process_view(self, request: Any, view: Any, args: Any, kwargs: Any) -> None:
        """Once the URL resolved, before the view: the route pattern and the URL's tenant, so
        that records made during the view (log calls, API reads) carry them as well."""
        context = current()
        match = getattr(request, "resolver_match", None)
        if context is None or match is None:
            return
        if context.route is None and match.route:
            context.route = "/" + str(match.route).lstrip("^").rstrip("$")
        tenant = match.kwargs.get(self.capture.options.tenant_param or "")
        if context.tenant is None and isinstance(tenant, str):
            context.tenant = tenant

    def _end(self, request: Any, response: Any, facts: RequestFacts, user: Any) -> None:
        """After the view: status, the user as actor; then hand off."""
        try:
            facts.status = response.status_code
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
