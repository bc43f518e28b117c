"""Audit-log API endpoints as Starlette routes, for any Starlette or FastAPI app.

    app.mount("/t/{tenant}/api/v1/admin", Router(audit_log_routes(audit_log)))

- ``GET /audit-logs`` — the list, filters as query parameters (both products' vocabularies),
  ``{"data": [...], "meta": {...}}``;
- ``GET /audit-logs/{log_id}`` — one record, 404 when absent or in another tenant;
- ``GET /audit-logs/aggregations`` — counts for charts: the timeline by outcome and the top
  values of fields, with the list's filters (:mod:`auditwire.listing.charts`);
- ``POST /audit-logs/export`` — ``{"format": "csv"|"json"|"ndjson", "filters": {...}}``, a
  streamed file of everything the filters match;
- ``GET /security_logs`` — the billing product's view: its field names and pagination;
- ``GET /openapi.json`` — the OpenAPI description of these routes;
- ``GET /viewer``, ``/viewer/{log_id}``, ``/viewer/export`` — the viewer's pages
  (:mod:`auditwire.listing.viewer`), under the same rules.

Who may read is decided twice. ``permission(request)`` says whether the caller may read audit
logs at all: by default an authenticated caller with the ``admin`` role or the
``security_logs`` permission among its Starlette auth scopes (the billing product's custom-role
rule). Then the tenant rule: the tenant in the URL (the mount's ``{tenant}`` path parameter)
must be the caller's own, as ``tenant_of(request)`` tells it — by default the authenticated
user's ``tenant`` attribute, else a single ``tenant:<id>`` auth scope. A caller whose tenant
cannot be told is refused, never shown every tenant; reading every tenant is for holders of
``all_tenants_scope`` only, which nobody holds unless the application names it. Everyone else
gets 403. The tenant then bounds every query, whatever the filters say. Reading and exporting
are audited (``audit_log.read``, ``export.created``).

The rules and answers are :class:`~auditwire.listing.api.AuditLogAPI`'s, shared with the Flask
blueprint and the Django views; this module adds Starlette's routes, its defaults for the hooks,
and :func:`read_recorder`, which records a read the same way in every framework.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from auditwire.capture.client_ip import canonical
from auditwire.capture.context import current
from auditwire.capture.records import ANONYMOUS, scope_user
from auditwire.errors import InvalidRecordError, MissingDependencyError
from auditwire.listing.api import Answer, AuditLogAPI, Caller, Operation, Recorder
from auditwire.record import Actor
from auditwire.stores.base import Store

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from auditwire.audit_log import AuditLog
    from auditwire.record import AuditRecord

__all__ = [
    "READ_SCOPES",
    "TENANT_SCOPE_PREFIX",
    "CallerOf",
    "Permission",
    "TenantOf",
    "audit_log_api",
    "audit_log_routes",
    "caller_tenant",
    "default_permission",
    "read_recorder",
    "user_tenant",
    "viewer_app",
]

logger = logging.getLogger("auditwire")

Permission = Callable[["Request"], bool]
TenantOf = Callable[["Request"], "str | None"]
#: The caller of a request, as any user object (see :meth:`~auditwire.record.Actor.of`).
CallerOf = Callable[["Request"], object]
READ_SCOPES = frozenset({"admin", "security_logs"})
#: An auth scope ``tenant:<id>`` names the caller's tenant.
TENANT_SCOPE_PREFIX = "tenant:"
#: What :meth:`Actor.of` makes of an unauthenticated user.
_UNNAMED = Actor()


def default_permission(request: Request) -> bool:
    """Admins and holders of the ``security_logs`` permission, nobody else."""
    auth = request.scope.get("auth")
    scopes = set(getattr(auth, "scopes", ()) or ())
    return bool(scopes & READ_SCOPES)


def user_tenant(user: object) -> str | None:
    """An authenticated user's ``tenant`` attribute, when it is text (else ``None``)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    tenant = getattr(user, "tenant", None)
    return tenant if isinstance(tenant, str) and tenant else None


def caller_tenant(request: Request) -> str | None:
    """The tenant the authenticated caller belongs to: the user's ``tenant`` attribute, else
    the one ``tenant:<id>`` among its auth scopes; ``None`` when that cannot be told (no user,
    no claim, or claims to several tenants)."""
    tenant = user_tenant(request.scope.get("user"))
    if tenant is not None:
        return tenant
    auth = request.scope.get("auth")
    claimed = {
        scope[len(TENANT_SCOPE_PREFIX) :]
        for scope in getattr(auth, "scopes", ()) or ()
        if isinstance(scope, str) and scope.startswith(TENANT_SCOPE_PREFIX)
    }
    return claimed.pop() if len(claimed) == 1 and "" not in claimed else None


def audit_log_api(audit_log: AuditLog, mounted_at: str) -> AuditLogAPI:
    """The framework-neutral API over ``audit_log``'s store, refused for a write-only one."""
    store = audit_log.store
    if not isinstance(store, Store):
        raise TypeError(f"{store!r} is write-only; the audit-log API needs a readable store")
    return AuditLogAPI(
        store,
        bound_tenant=audit_log.tenant,
        mounted_at=mounted_at,
        integrity=audit_log.sealer.integrity,
    )


def read_recorder(audit_log: AuditLog, reader: Callable[[], object], peer: str | None) -> Recorder:
    """Records the reads of one API request. ``reader`` names the caller as any user object
    (:meth:`Actor.of`); one that fails, or names no user, leaves the read recorded as the
    request's actor or anonymous — never refused. Inside an audited request the record takes
    its client IP, user agent and request ids, and stands for the request (no generic record
    beside it); elsewhere the IP is the ``peer``'s. The metadata is bounded (a summary of the
    filters); should it still be refused, the read is recorded without it, saying so."""

    def record(action: str, tenant: str | None, metadata: dict[str, Any]) -> None:
        context = current()
        facts = context.request if context is not None else None
        try:
            caller = Actor.of(reader())
        except Exception:
            logger.exception("auditwire: the reader hook raised or named no user")
            caller = None
        if caller in (None, _UNNAMED, ANONYMOUS):
            caller = (context.actor if context is not None else None) or ANONYMOUS
        # Servers may give a non-IP peer (a unix socket path, a test client's name).
        where = (
            facts.record_fields()
            if facts is not None
            else {"ip_address": canonical(peer) if peer else None}
        )

        def build(details: dict[str, Any]) -> AuditRecord:
            return audit_log.build(action, actor=caller, tenant=tenant, metadata=details, **where)

        try:
            built = build(metadata)
        except InvalidRecordError as exc:
            logger.error("auditwire: the record of a read kept no details: %s", exc)
            built = build({"auditwire": {"dropped": exc.field}})
        audit_log.submit(built)
        if context is not None:
            context.logged += 1

    return record


def audit_log_routes(
    audit_log: AuditLog,
    *,
    permission: Permission = default_permission,
    tenant_of: TenantOf = caller_tenant,
    all_tenants_scope: str | None = None,
    tenant_param: str = "tenant",
    mounted_at: str = "/t/{tenant}/api/v1/admin",
    caller_of: CallerOf | None = None,
) -> list[Route]:
    """The routes; mount them under a prefix (with ``{tenant}`` for per-tenant URLs).

    ``permission`` decides who may read audit logs at all; ``tenant_of`` tells the caller's
    tenant, which must be the URL's; holders of the auth scope ``all_tenants_scope`` (none by
    default) read any tenant. ``caller_of`` names the caller in the records of reads — any
    user object :meth:`~auditwire.record.Actor.of` reads, for applications whose
    authentication is not Starlette's (a FastAPI dependency, a session); by default the
    authenticated ``scope["user"]``. It is called in a worker thread with the request: read
    what the request already carries (a verified token's claims).

    Without ``{tenant}`` in the mount, the caller's tenant (when it can be told) or the log's
    own tenant bounds the queries; such a mount with neither reads every record, which suits a
    single-tenant application only. ``mounted_at`` is the prefix as
    the OpenAPI description (``openapi.json``) states it."""
    try:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
        from starlette.routing import Route
    except ImportError:
        raise MissingDependencyError("auditwire.web", "web") from None
    api = audit_log_api(audit_log, mounted_at)

    def caller(request: Request) -> Caller:
        def every(request: Request) -> bool:
            auth = request.scope.get("auth")
            return all_tenants_scope in (getattr(auth, "scopes", ()) or ())

        return Caller.asking(
            request, permission, tenant_of, every if all_tenants_scope is not None else None
        )

    def endpoint(operation: Operation) -> Callable[[Request], Any]:
        async def answer(request: Request) -> Response:
            def reader() -> object:
                if caller_of is None:
                    return scope_user(request.scope)
                return caller_of(request)

            url_tenant = request.path_params.get(tenant_param)
            # Store I/O in a worker thread: a slow query must not hold up the event loop.
            answered: Answer = await run_in_threadpool(
                api.answer,
                operation,
                caller(request),
                read_recorder(audit_log, reader, request.client.host if request.client else None),
                url_tenant=url_tenant if isinstance(url_tenant, str) else None,
                params=request.query_params,
                log_id=str(request.path_params.get("log_id", "")),
                body=await request.body() if operation == "export" else b"",
            )
            if isinstance(answered.body, Mapping):
                return JSONResponse(answered.body, answered.status, headers=answered.headers)
            if isinstance(answered.body, str):
                return HTMLResponse(answered.body, answered.status, headers=answered.headers)
            return StreamingResponse(  # a plain iterator: Starlette reads it in a worker thread
                answered.body,
                answered.status,
                headers=answered.headers,
                media_type=answered.media_type,
            )

        return answer

    return [
        Route("/openapi.json", endpoint("openapi"), methods=["GET"]),
        Route("/audit-logs", endpoint("list"), methods=["GET"]),
        Route("/audit-logs/aggregations", endpoint("aggregations"), methods=["GET"]),
        Route("/audit-logs/export", endpoint("export"), methods=["POST"]),
        Route("/audit-logs/{log_id}", endpoint("get"), methods=["GET"]),
        Route("/security_logs", endpoint("security_logs"), methods=["GET"]),
        Route("/viewer", endpoint("viewer"), methods=["GET"]),
        Route("/viewer/export", endpoint("viewer_export"), methods=["GET"]),
        Route("/viewer/{log_id}", endpoint("viewer_record"), methods=["GET"]),
    ]


#: Who reads through a standalone viewer, in the records of its reads.
STANDALONE_READER = Actor(type="system", id="auditwire-viewer", name="auditwire viewer")


def viewer_app(audit_log: AuditLog) -> Any:
    """A Starlette app serving the viewer and the API at its root, for one operator on this
    machine (``auditwire serve``, ``make demo``): it has no authentication of its own, so
    every caller reads every record of the log (or of its tenant, for a log bound to one).
    Serve it on a loopback address, or put it behind authentication."""
    try:
        from starlette.applications import Starlette
        from starlette.responses import RedirectResponse
        from starlette.routing import Mount, Route
    except ImportError:
        raise MissingDependencyError("auditwire.web", "web") from None

    async def home(request: Request) -> Response:
        return RedirectResponse("viewer")

    routes = audit_log_routes(
        audit_log,
        permission=lambda request: True,
        tenant_of=lambda request: None,
        mounted_at="",
        caller_of=lambda request: STANDALONE_READER,
    )
    return Starlette(routes=[Route("/", home), Mount("", routes=routes)])
