"""Audit-log API endpoints as Starlette routes, for any Starlette or FastAPI app.

    app.mount("/t/{tenant}/api/v1/admin", Router(audit_log_routes(audit_log)))

- ``GET /audit-logs`` — the list, filters as query parameters (both products' vocabularies),
  ``{"data": [...], "meta": {...}}``;
- ``GET /audit-logs/{log_id}`` — one record, 404 when absent or in another tenant;
- ``POST /audit-logs/export`` — ``{"format": "csv"|"json"|"ndjson", "filters": {...}}``, a
  streamed file of everything the filters match;
- ``GET /security_logs`` — the billing product's view: its field names and pagination;
- ``GET /openapi.json`` — the OpenAPI description of these routes.

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
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from auditwire.capture.client_ip import canonical
from auditwire.capture.records import ANONYMOUS, scope_user
from auditwire.errors import (
    AccessDeniedError,
    InvalidQueryError,
    InvalidRecordError,
    MissingDependencyError,
    RecordNotFoundError,
)
from auditwire.listing.export import FORMATS, export, parse_export_request
from auditwire.listing.openapi import openapi_document
from auditwire.listing.params import filters_summary, list_records, parse_list_request
from auditwire.record import MAX_TEXT, Actor, check_text
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
    "audit_log_routes",
    "caller_tenant",
    "default_permission",
]

logger = logging.getLogger("auditwire")

Permission = Callable[["Request"], bool]
TenantOf = Callable[["Request"], "str | None"]
#: The caller of a request, as any user object (see :meth:`~auditwire.record.Actor.of`).
CallerOf = Callable[["Request"], object]
READ_SCOPES = frozenset({"admin", "security_logs"})
#: An auth scope ``tenant:<id>`` names the caller's tenant.
TENANT_SCOPE_PREFIX = "tenant:"


def default_permission(request: Request) -> bool:
    """Admins and holders of the ``security_logs`` permission, nobody else."""
    auth = request.scope.get("auth")
    scopes = set(getattr(auth, "scopes", ()) or ())
    return bool(scopes & READ_SCOPES)


def caller_tenant(request: Request) -> str | None:
    """The tenant the authenticated caller belongs to: the user's ``tenant`` attribute, else
    the one ``tenant:<id>`` among its auth scopes; ``None`` when that cannot be told (no user,
    no claim, or claims to several tenants)."""
    user = request.scope.get("user")
    if user is not None and getattr(user, "is_authenticated", False):
        tenant = getattr(user, "tenant", None)
        if isinstance(tenant, str) and tenant:
            return tenant
    auth = request.scope.get("auth")
    claimed = {
        scope[len(TENANT_SCOPE_PREFIX) :]
        for scope in getattr(auth, "scopes", ()) or ()
        if isinstance(scope, str) and scope.startswith(TENANT_SCOPE_PREFIX)
    }
    return claimed.pop() if len(claimed) == 1 and "" not in claimed else None


def _valid_tenant(tenant: str) -> str:
    """The URL's tenant, refused (400) when no record could carry it."""
    try:
        check_text("tenant", tenant, MAX_TEXT, required=True)
    except InvalidRecordError as exc:
        raise InvalidQueryError("tenant", exc.problem) from None
    return tenant


def _security_log(record: AuditRecord) -> dict[str, Any]:
    """A record in the billing product's Security logs shape."""
    return {
        "log_id": record.id,
        "user_email": record.actor.email,
        "log_type": record.category,
        "log_event": record.action,
        "logged_at": record.to_api()["timestamp"],
        "resources": record.metadata,
        "message": record.message,
        "device_info": (
            {
                "ip_address": record.ip_address,
                "user_agent": record.user_agent,
                **(record.device.to_api() if record.device else {}),
            }
            if record.ip_address or record.user_agent or record.device
            else None
        ),
    }


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
    authenticated ``scope["user"]``. It is called on the event loop: read what the request
    already carries (a verified token's claims), not a database.

    Without ``{tenant}`` in the mount, the caller's tenant (when it can be told) or the log's
    own tenant bounds the queries; such a mount with neither reads every record, which suits a
    single-tenant application only. ``mounted_at`` is the prefix as
    the OpenAPI description (``openapi.json``) states it."""
    try:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse, StreamingResponse
        from starlette.routing import Route
    except ImportError:
        raise MissingDependencyError("auditwire.web", "web") from None
    store = audit_log.store
    if not isinstance(store, Store):
        raise TypeError(f"{store!r} is write-only; the audit-log API needs a readable store")
    readable: Store = store
    description = openapi_document(mounted_at)

    def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message, **extra}}, status)

    def operator(request: Request) -> bool:
        auth = request.scope.get("auth")
        return all_tenants_scope is not None and all_tenants_scope in (
            getattr(auth, "scopes", ()) or ()
        )

    def tenant_for(request: Request) -> str | None:
        """The tenant this request reads, once the caller may read it (else
        :class:`~auditwire.errors.AccessDeniedError`, naming why)."""
        url_tenant = request.path_params.get(tenant_param)
        if isinstance(url_tenant, str):
            url_tenant = _valid_tenant(url_tenant)
        bound = audit_log.tenant
        if bound is not None and url_tenant not in (None, bound):
            raise AccessDeniedError("this audit log holds another tenant's records only")
        if operator(request):
            return url_tenant if url_tenant is not None else bound
        own = tenant_of(request)
        if url_tenant is None:
            return bound if bound is not None else own
        if own is None:
            raise AccessDeniedError(
                "the caller's tenant cannot be told, so no tenant's logs are shown"
            )
        if own != url_tenant:
            raise AccessDeniedError("a caller reads only its own tenant's audit logs")
        return url_tenant

    def reader(request: Request) -> Actor:
        """Who reads: ``caller_of``'s answer, else Starlette's authenticated user. A hook
        that fails, or names no user, leaves the read recorded as anonymous, never refused."""
        if caller_of is None:
            return scope_user(request.scope) or ANONYMOUS
        try:
            return Actor.of(caller_of(request)) or ANONYMOUS
        except Exception:
            logger.exception("auditwire: caller_of raised or named no user; the read is anonymous")
            return ANONYMOUS

    def audited(
        request: Request, tenant: str | None, action: str, metadata: dict[str, Any]
    ) -> None:
        """Record the read. The metadata is bounded (a summary of the filters); should it
        still be refused, the read is recorded without it, saying so — never fails it."""

        caller = reader(request)

        def build(details: dict[str, Any]) -> AuditRecord:
            return audit_log.build(
                action,
                actor=caller,
                tenant=tenant,
                metadata=details,
                # Servers may give a non-IP peer (a unix socket path, a test client's name).
                ip_address=canonical(request.client.host) if request.client else None,
            )

        try:
            record = build(metadata)
        except InvalidRecordError as exc:
            logger.error("auditwire: the record of a read kept no details: %s", exc)
            record = build({"auditwire": {"dropped": exc.field}})
        audit_log.submit(record)

    def guarded(
        handler: Callable[[Request, str | None], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not permission(request):
                return error(403, "forbidden", "reading audit logs needs the admin role or "
                             "the security_logs permission")  # fmt: skip
            try:
                return await handler(request, tenant_for(request))
            except AccessDeniedError as exc:
                return error(403, "forbidden_tenant", str(exc))
            except InvalidQueryError as exc:
                return error(400, "invalid_parameter", str(exc), parameter=exc.parameter)
            except RecordNotFoundError as exc:
                return error(404, "not_found", str(exc))

        return endpoint

    async def list_logs(request: Request, tenant: str | None) -> Response:
        # Store I/O in a worker thread: a slow query must not hold up the event loop.
        body = await run_in_threadpool(list_records, readable, request.query_params, tenant=tenant)
        audited(
            request, tenant, "audit_log.read", {"filters": filters_summary(request.query_params)}
        )
        return JSONResponse(body)

    async def retrieve(request: Request, tenant: str | None) -> Response:
        record = await run_in_threadpool(readable.get, request.path_params["log_id"], tenant=tenant)
        audited(request, tenant, "audit_log.read", {"logId": record.id})
        return JSONResponse({"data": record.to_api()})

    async def export_logs(request: Request, tenant: str | None) -> Response:
        wanted = parse_export_request(await request.body(), tenant=tenant)
        audited(
            request,
            tenant,
            "export.created",
            {"format": wanted.format, "filters": filters_summary(wanted.filters)},
        )
        return StreamingResponse(  # a plain iterator: Starlette reads it in a worker thread
            export(readable, wanted.query, wanted.format),
            media_type=FORMATS[wanted.format],
            headers={"content-disposition": f'attachment; filename="audit-logs.{wanted.format}"'},
        )

    async def security_logs(request: Request, tenant: str | None) -> Response:
        listing = parse_list_request(request.query_params, tenant=tenant)
        page = await run_in_threadpool(readable.page, listing.query, listing.page)
        audited(
            request, tenant, "audit_log.read", {"filters": filters_summary(request.query_params)}
        )
        return JSONResponse(
            {
                "security_logs": [_security_log(r) for r in page.records],
                "meta": {
                    "current_page": page.page,
                    "next_page": page.page + 1 if page.page < page.total_pages else None,
                    "prev_page": page.page - 1 if page.page > 1 else None,
                    "total_pages": page.total_pages,
                    "total_count": page.total,
                },
            }
        )

    async def describe(request: Request) -> Response:
        return JSONResponse(description)

    return [
        Route("/openapi.json", describe, methods=["GET"]),
        Route("/audit-logs", guarded(list_logs), methods=["GET"]),
        Route("/audit-logs/export", guarded(export_logs), methods=["POST"]),
        Route("/audit-logs/{log_id}", guarded(retrieve), methods=["GET"]),
        Route("/security_logs", guarded(security_logs), methods=["GET"]),
    ]
