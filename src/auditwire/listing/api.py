"""The audit-log API whatever the web framework: who may read which tenant, and the answer to
each call.

The doors — :mod:`auditwire.web` (Starlette, FastAPI), the Flask blueprint and the Django
views — each turn their framework's request into a :class:`Caller` and a call of
:meth:`AuditLogAPI.answer`, and the :class:`Answer` into their framework's response. The
rules live here once, so that a tenant leak fixed for one framework is fixed for all of them:

- the caller must be ``permitted`` (else 403 ``forbidden``);
- the tenant in the URL must be the caller's own (else 403 ``forbidden_tenant``), unless the
  caller reads every tenant; a caller whose tenant cannot be told reads no tenant's URL;
- a log bound to one tenant serves that tenant's URL only;
- the tenant then bounds every query, whatever the filters say;
- bad input is a 400 naming the parameter, an absent record (or another tenant's) a 404;
- each read is handed to the door's recorder (``audit_log.read``, ``export.created``) once
  it succeeded, with a bounded summary of its filters.

The same rules serve the JSON calls and the viewer's pages (:mod:`auditwire.listing.viewer`),
whose refusals are pages too.

Calls that read the store block: the doors run them where blocking is allowed (a worker
thread under asyncio).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from auditwire.errors import (
    AccessDeniedError,
    InvalidQueryError,
    InvalidRecordError,
    RecordNotFoundError,
)
from auditwire.integrity.sealer import Integrity
from auditwire.listing.charts import aggregate
from auditwire.listing.export import FORMATS, export, parse_export_request
from auditwire.listing.openapi import openapi_document
from auditwire.listing.params import filters_summary, list_records, parse_list_request
from auditwire.listing.viewer import Viewer, viewer_filters
from auditwire.record import MAX_TEXT, AuditRecord, check_text
from auditwire.stores.base import Store

__all__ = ["VIEWER_OPERATIONS", "Answer", "AuditLogAPI", "Caller", "Operation", "Recorder"]

HTML = "text/html; charset=utf-8"
#: The viewer's pages load nothing: no script at all, their own inline styles, no image but
#: inline ones, forms only to themselves, and no framing by another site.
PAGE_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}

#: The API's calls: the list, one record, the counts for charts, an export, the billing
#: product's view, the OpenAPI description (which needs no permission); and the viewer's
#: pages (:mod:`auditwire.listing.viewer`): the list, one record, an export.
Operation = Literal[
    "list",
    "get",
    "aggregations",
    "export",
    "security_logs",
    "openapi",
    "viewer",
    "viewer_record",
    "viewer_export",
]
VIEWER_OPERATIONS = frozenset({"viewer", "viewer_record", "viewer_export"})
#: Records a successful read: ``(action, tenant, metadata)``.
Recorder = Callable[[str, "str | None", dict[str, Any]], None]

logger = logging.getLogger("auditwire")
_Request = TypeVar("_Request")

FORBIDDEN = "reading audit logs needs the admin role or the security_logs permission"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls, as the door's hooks tell it: whether it may read audit logs at all, its own
    tenant (``None``: cannot be told) and whether it reads every tenant."""

    permitted: bool
    tenant: str | None = None
    all_tenants: bool = False

    @classmethod
    def asking(
        cls,
        request: _Request,
        permission: Callable[[_Request], bool],
        tenant_of: Callable[[_Request], str | None],
        all_tenants: Callable[[_Request], bool] | None = None,
    ) -> Caller:
        """The caller of ``request`` as the application's hooks tell it. A hook that raises
        refuses: it is logged, and the caller is not permitted — an audit log is not shown
        to someone nobody could vouch for."""
        try:
            if all_tenants is not None and all_tenants(request):
                return cls(permitted=bool(permission(request)), all_tenants=True)
            return cls(permitted=bool(permission(request)), tenant=tenant_of(request))
        except Exception:
            logger.exception("auditwire: a permission or tenant hook raised; the read is refused")
            return cls(permitted=False)


@dataclass(frozen=True, slots=True)
class Answer:
    """A response for the door to send: JSON data, a page, or a stream of text chunks (an
    export)."""

    status: int
    body: Mapping[str, Any] | str | Iterator[str]
    media_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


def _error(status: int, code: str, message: str, **extra: Any) -> Answer:
    return Answer(status, {"error": {"code": code, "message": message, **extra}})


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


class AuditLogAPI:
    """The API over ``store``. ``bound_tenant`` is the tenant of a log bound to one (it serves
    no other tenant's URL); ``mounted_at`` is the prefix the OpenAPI description states;
    ``integrity`` (the log's origin and keyring) is what the viewer checks records against."""

    def __init__(
        self,
        store: Store,
        *,
        bound_tenant: str | None = None,
        mounted_at: str = "/t/{tenant}/api/v1/admin",
        integrity: Integrity | None = None,
    ) -> None:
        self.store = store
        self.integrity = integrity
        self.bound_tenant = bound_tenant
        self.description = openapi_document(mounted_at)
        self._viewer: Viewer | None = None

    @property
    def viewer(self) -> Viewer:
        """The viewer's pages, made on first use (they need Jinja2, the API does not)."""
        if self._viewer is None:
            self._viewer = Viewer(self.store, self.integrity)
        return self._viewer

    def tenant_for(self, caller: Caller, url_tenant: str | None) -> str | None:
        """The tenant this call reads, once the caller may read it (else
        :class:`~auditwire.errors.AccessDeniedError`, naming why). Without a tenant in the URL,
        the log's own tenant or the caller's bounds the reads; with neither, every record is
        read, which suits a single-tenant application only."""
        if url_tenant is not None:
            url_tenant = _valid_tenant(url_tenant)
        bound = self.bound_tenant
        if bound is not None and url_tenant not in (None, bound):
            raise AccessDeniedError("this audit log holds another tenant's records only")
        if caller.all_tenants:
            return url_tenant if url_tenant is not None else bound
        if url_tenant is None:
            return bound if bound is not None else caller.tenant
        if caller.tenant is None:
            raise AccessDeniedError(
                "the caller's tenant cannot be told, so no tenant's logs are shown"
            )
        if caller.tenant != url_tenant:
            raise AccessDeniedError("a caller reads only its own tenant's audit logs")
        return url_tenant

    def answer(
        self,
        operation: Operation,
        caller: Caller,
        record: Recorder,
        *,
        url_tenant: str | None = None,
        params: Any = None,
        log_id: str = "",
        body: bytes = b"",
    ) -> Answer:
        """The answer to one call. ``params`` are the query parameters as the framework holds
        them (Starlette's ``query_params``, Flask's ``request.args``, Django's ``request.GET``);
        ``body`` is an export's request body."""
        if operation == "openapi":
            return Answer(200, self.description)
        page = operation in VIEWER_OPERATIONS
        if not caller.permitted:
            return self._error(page, 403, "forbidden", FORBIDDEN)
        try:
            tenant = self.tenant_for(caller, url_tenant)
            if page:
                return self._page(operation, tenant, record, params or {}, log_id)
            if operation == "list":
                data = list_records(self.store, params or {}, tenant=tenant)
                record("audit_log.read", tenant, {"filters": filters_summary(params or {})})
                return Answer(200, data)
            if operation == "get":
                found = self.store.get(log_id, tenant=tenant)
                record("audit_log.read", tenant, {"logId": found.id})
                return Answer(200, {"data": found.to_api()})
            if operation == "aggregations":
                data = aggregate(self.store, params or {}, tenant=tenant)
                record("audit_log.read", tenant, {"filters": filters_summary(params or {})})
                return Answer(200, data)
            if operation == "export":
                return self._export(body, tenant, record)
            return self._security_logs(params or {}, tenant, record)
        except AccessDeniedError as exc:
            return self._error(page, 403, "forbidden_tenant", str(exc))
        except InvalidQueryError as exc:
            return self._error(page, 400, "invalid_parameter", str(exc), parameter=exc.parameter)
        except RecordNotFoundError as exc:
            return self._error(page, 404, "not_found", str(exc))

    def _error(self, page: bool, status: int, code: str, message: str, **extra: Any) -> Answer:
        """An error as JSON, or as a page for the viewer's calls."""
        if page:
            page_html = self.viewer.error_page(status, message)
            return Answer(status, page_html, media_type=HTML, headers=PAGE_HEADERS)
        return _error(status, code, message, **extra)

    def _page(
        self, operation: Operation, tenant: str | None, record: Recorder, params: Any, log_id: str
    ) -> Answer:
        viewer = self.viewer
        if operation == "viewer_record":
            found = self.store.get(log_id, tenant=tenant)
            record("audit_log.read", tenant, {"logId": found.id})
            return Answer(200, viewer.record_page(found), media_type=HTML, headers=PAGE_HEADERS)
        if operation == "viewer_export":
            chosen, chunks = viewer.download(params, tenant=tenant)
            record(
                "export.created",
                tenant,
                {"format": chosen, "filters": filters_summary(viewer_filters(params))},
            )
            return Answer(
                200,
                chunks,
                media_type=FORMATS[chosen],
                headers={"content-disposition": f'attachment; filename="audit-logs.{chosen}"'},
            )
        status, html = viewer.page(params, tenant=tenant)
        if status == 200:
            record("audit_log.read", tenant, {"filters": filters_summary(viewer_filters(params))})
        return Answer(status, html, media_type=HTML, headers=PAGE_HEADERS)

    def _export(self, body: bytes, tenant: str | None, record: Recorder) -> Answer:
        wanted = parse_export_request(body, tenant=tenant)
        record(
            "export.created",
            tenant,
            {"format": wanted.format, "filters": filters_summary(wanted.filters)},
        )
        return Answer(
            200,
            export(self.store, wanted.query, wanted.format),
            media_type=FORMATS[wanted.format],
            headers={"content-disposition": f'attachment; filename="audit-logs.{wanted.format}"'},
        )

    def _security_logs(self, params: Any, tenant: str | None, record: Recorder) -> Answer:
        listing = parse_list_request(params, tenant=tenant)
        page = self.store.page(listing.query, listing.page)
        record("audit_log.read", tenant, {"filters": filters_summary(params)})
        return Answer(
            200,
            {
                "security_logs": [_security_log(r) for r in page.records],
                "meta": {
                    "current_page": page.page,
                    "next_page": page.page + 1 if page.page < page.total_pages else None,
                    "prev_page": page.page - 1 if page.page > 1 else None,
                    "total_pages": page.total_pages,
                    "total_count": page.total,
                },
            },
        )
