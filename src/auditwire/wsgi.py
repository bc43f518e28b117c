"""Audit middleware for WSGI applications (Flask, Django, any PEP 3333 app).

The record is handed off when the server closes the response iterable — after the body was
sent — and the iterable's own ``close()`` is always called first (PEP 3333). An exception from
the application, before or while streaming, is recorded as ``error`` and re-raised untouched;
a response the server stopped sending early (the client left) is recorded as disconnected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from auditwire.audit_log import AuditLog
from auditwire.capture.context import bind, current, unbind
from auditwire.capture.facts import RequestFacts, read_wsgi_headers
from auditwire.capture.middleware import Capture

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from auditwire.capture.options import CaptureOptions

__all__ = ["ENVIRON_KEY", "AuditMiddleware", "Environ", "StartResponse", "WSGIApp", "init_flask"]

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

#: The environ key under which handlers find the request's AuditContext (also ``current()``).
ENVIRON_KEY = "auditwire"


def _path(environ: Environ) -> str:
    """PATH_INFO arrives as latin-1-decoded bytes (PEP 3333); URLs are UTF-8."""
    raw = environ.get("PATH_INFO") or "/"
    try:
        return str(raw).encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return str(raw)


class AuditMiddleware:
    """``app.wsgi_app = AuditMiddleware(app.wsgi_app, audit_log, ...)``; the options are those
    of the ASGI middleware (:class:`~auditwire.capture.options.CaptureOptions`)."""

    def __init__(
        self,
        app: WSGIApp,
        audit_log: AuditLog | None = None,
        **options: Unpack[CaptureOptions],
    ) -> None:
        self.app = app
        self.audit_log = audit_log if audit_log is not None else AuditLog()
        self.capture = Capture(self.audit_log.builder, self.audit_log.submit, **options)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        capture = self.capture
        method = str(environ.get("REQUEST_METHOD") or "GET")
        path = _path(environ)
        if not capture.wants(method, path):
            return self.app(environ, start_response)
        options = capture.options
        facts = RequestFacts(
            options,
            method,
            path,
            read_wsgi_headers,
            environ.get("REMOTE_ADDR"),
            environ,
        )
        if options.read_span is not None:
            facts.span_context = options.read_span()
        environ[ENVIRON_KEY] = facts

        def audit_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            try:
                facts.status = int(status[:3])
            except (TypeError, ValueError):
                facts.status = None
            if options.devices is not None:
                secure = environ.get("wsgi.url_scheme") == "https"
                cookie = capture.login_cookie(facts, secure=secure)
                if cookie is not None:
                    headers = [*headers, (cookie[0].decode(), cookie[1].decode("latin-1"))]
            return start_response(status, headers, exc_info)

        token = bind(facts)
        try:
            result = self.app(environ, audit_start_response)
        except BaseException as exc:
            facts.error_type = type(exc).__name__
            capture.finish(facts)
            raise
        finally:
            unbind(token)
        return _AuditedBody(result, facts, capture)


class _AuditedBody:
    """The application's response iterable, watched: errors while streaming, early close."""

    __slots__ = ("_capture", "_closed", "_exhausted", "_facts", "_iterator", "_result")

    def __init__(self, result: Iterable[bytes], facts: RequestFacts, capture: Capture) -> None:
        self._result = result
        self._facts = facts
        self._capture = capture
        self._iterator: Iterator[bytes] | None = None
        self._exhausted = False
        self._closed = False

    def __iter__(self) -> _AuditedBody:
        return self

    def __next__(self) -> bytes:
        try:
            if self._iterator is None:
                self._iterator = iter(self._result)
            return next(self._iterator)
        except StopIteration:
            self._exhausted = True
            raise
        except BaseException as exc:
            self._facts.error_type = type(exc).__name__
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        facts = self._facts
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        except BaseException as exc:
            facts.error_type = facts.error_type or type(exc).__name__
            raise
        finally:
            facts.disconnected = not self._exhausted and facts.error_type is None
            self._capture.finish(facts)


def init_flask(app: Any, tenant_param: str | None = "tenant") -> None:
    """Give the middleware Flask's route templates (``/users/<int:user_id>``) and the tenant
    the URL names (its ``tenant_param`` variable, as the ASGI middleware takes it from the
    path parameters).

    WSGI hands middleware no routing information and Flask's request context is gone by the
    time the response is closed, so a ``before_request`` hook notes the matched rule on the
    request's audit context.
    """
    from flask import request

    @app.before_request  # type: ignore[untyped-decorator]
    def _note_route() -> None:
        context = current()
        if context is not None and request.url_rule is not None:
            context.route = request.url_rule.rule
            tenant = (request.view_args or {}).get(tenant_param or "")
            if context.tenant is None and isinstance(tenant, str):
                context.tenant = tenant
