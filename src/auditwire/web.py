"""Audit-log API endpoints as Starlette routes, for any Starlette or FastAPI app.

    app.mount("/t/{tenant}/api/v1/admin", Router(audit_log_routes(audit_log)))

- ``GET /audit-logs`` — the list, filters as query parameters (both products' vocabularies),
  ``{"data": [...], "meta": {...}}``;
- ``GET /audit-logs/{log_id}`` — one record, 404 when absent or in another tenant;
- ``POST /audit-logs/export`` — ``{"format": "csv"|"json"|"ndjson", "filters": {...}}``, a
  streamed file of everything the filters match;
- ``GET /security_logs`` — the billing product's view: its field names and pagination;
- ``GET /openapi.json`` — the OpenAPI description of these routes.

Who may read is decided by ``permission(request)``: by default an authenticated caller with the
``admin`` role or the ``security_logs`` permission among its Starlette auth scopes (the billing
product's custom-role rule); everyone else gets 403. Reading and exporting are audited
(``audit_log.read``, ``export.created``). The tenant comes from the mount's ``{tenant}`` path
parameter and bounds every query, whatever the filters say.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from auditwire.capture.client_ip import canonical
from auditwire.capture.records import ANONYMOUS, scope_user
from auditwire.errors import InvalidQueryError, MissingDependencyError, RecordNotFoundError
from auditwire.listing.export import FORMATS, export
from auditwire.listing.openapi import openapi_document
from auditwire.listing.params import list_records, parse_list_request
from auditwire.stores.base import Store

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from auditwire.audit_log import AuditLog
    from auditwire.record import AuditRecord

__all__ = ["READ_SCOPES", "Permission", "audit_log_routes", "default_permission"]

Permission = Callable[["Request"], bool]
READ_SCOPES = frozenset({"admin", "security_logs"})


def default_permission(request: Request) -> bool:
    """Admins and holders of the ``security_logs`` permission, nobody else."""
    auth = request.scope.get("auth")
    scopes = set(getattr(auth, "scopes", ()) or ())
    return bool(scopes & READ_SCOPES)


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
    tenant_param: str = "tenant",
    mounted_at: str = "/t/{tenant}/api/v1/admin",
) -> list[Route]:
    """The routes; mount them under a prefix (with ``{tenant}`` for per-tenant URLs).
    ``mounted_at`` is that prefix as the OpenAPI description (``openapi.json``) states it."""
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

    def tenant_of(request: Request) -> str | None:
        tenant = request.path_params.get(tenant_param)
        return tenant if isinstance(tenant, str) else None

    def audited(request: Request, action: str, metadata: dict[str, Any]) -> None:
        audit_log.submit(
            audit_log.build(
                action,
                actor=scope_user(request.scope) or ANONYMOUS,
                tenant=tenant_of(request),
                metadata=metadata,
                # Servers may give a non-IP peer (a unix socket path, a test client's name).
                ip_address=canonical(request.client.host) if request.client else None,
            )
        )

    def guarded(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            if not permission(request):
                return error(403, "forbidden", "reading audit logs needs the admin role or "
                             "the security_logs permission")  # fmt: skip
            try:
                response: Response = await handler(request)
                return response
            except InvalidQueryError as exc:
                return error(400, "invalid_parameter", str(exc), parameter=exc.parameter)
            except RecordNotFoundError as exc:
                return error(404, "not_found", str(exc))

        return endpoint

    async def list_logs(request: Request) -> Response:
        # Store I/O in a worker thread: a slow query must not hold up the event loop.
        body = await run_in_threadpool(
            list_records, readable, request.query_params, tenant=tenant_of(request)
        )
        audited(request, "audit_log.read", {"filters": dict(request.query_params)})
        return JSONResponse(body)

    async def retrieve(request: Request) -> Response:
        record = await run_in_threadpool(
            readable.get, request.path_params["log_id"], tenant=tenant_of(request)
        )
        audited(request, "audit_log.read", {"logId": record.id})
        return JSONResponse({"data": record.to_api()})

    async def export_logs(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise InvalidQueryError("body", "is not JSON") from None
        if not isinstance(body, dict):
            raise InvalidQueryError("body", "must be a JSON object")
        export_format = body.get("format", "json")
        if export_format not in FORMATS:
            raise InvalidQueryError("format", f"must be one of {', '.join(FORMATS)}")
        filters = body.get("filters") or {}
        if not isinstance(filters, dict):
            raise InvalidQueryError("filters", "must be an object of filter parameters")
        query = parse_list_request(
            {k: v if isinstance(v, list) else str(v) for k, v in filters.items()},
            tenant=tenant_of(request),
        ).query
        audited(request, "export.created", {"format": export_format, "filters": filters})
        return StreamingResponse(  # a plain iterator: Starlette reads it in a worker thread
            export(readable, query, export_format),
            media_type=FORMATS[export_format],
            headers={"content-disposition": f'attachment; filename="audit-logs.{export_format}"'},
        )

    async def security_logs(request: Request) -> Response:
        listing = parse_list_request(request.query_params, tenant=tenant_of(request))
        page = await run_in_threadpool(readable.page, listing.query, listing.page)
        audited(request, "audit_log.read", {"filters": dict(request.query_params)})
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
