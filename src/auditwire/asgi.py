"""Audit middleware for any ASGI application (Starlette, FastAPI, Django, Quart, Litestar).

Pure ASGI: it wraps ``send`` to see the response status, keeps all per-request state in the
call (never on the instance), passes WebSocket and other scopes through untouched, and flushes
the writer when the server shuts the application down (``lifespan``). An exception from the
application is recorded as ``error`` and re-raised untouched; a request the client abandoned is
recorded as well, not lost.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from auditwire.audit_log import AuditLog
from auditwire.capture.context import bind, unbind
from auditwire.capture.facts import RequestFacts, read_asgi_headers
from auditwire.capture.middleware import Capture
from auditwire.delivery.aio import AsyncDelivery
from auditwire.errors import StoreError

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from auditwire.capture.options import CaptureOptions

__all__ = ["SCOPE_KEY", "ASGIApp", "AuditMiddleware", "Message", "Receive", "Scope", "Send"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("auditwire")

#: The scope key under which handlers find the request's AuditContext (also ``current()``).
SCOPE_KEY = "auditwire"


class AuditMiddleware:
    """``app = AuditMiddleware(app, audit_log, trusted_proxies=["10.0.0.0/8"], ...)``.

    The options are :class:`~auditwire.capture.options.CaptureOptions`, typed keywords (so
    ``Middleware(AuditMiddleware, ...)`` and ``app.add_middleware`` are checked). Without
    ``audit_log`` an :class:`~auditwire.AuditLog` on the default store is created.
    """

    def __init__(
        self,
        app: ASGIApp,
        audit_log: AuditLog | None = None,
        **options: Unpack[CaptureOptions],
    ) -> None:
        self.app = app
        self.audit_log = audit_log if audit_log is not None else AuditLog()
        self.capture = Capture(self.audit_log.builder, self.audit_log.submit, **options)
        #: An AsyncDelivery starts at lifespan start-up, or at the first request when the
        #: server runs no lifespan (``--lifespan off``), rather than never.
        self._start_pending = isinstance(self.audit_log.sink, AsyncDelivery)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type != "http":
            if scope_type == "lifespan":
                await self.app(scope, receive, self._lifespan_send(send))
            else:
                await self.app(scope, receive, send)
            return
        if self._start_pending:
            await self._start_delivery()
        capture = self.capture
        if not capture.wants(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return

        client = scope.get("client")
        options = capture.options
        facts = RequestFacts(
            options,
            scope["method"],
            scope["path"],
            read_asgi_headers,
            client[0] if client else None,
            scope,
        )
        if options.read_span is not None:
            facts.span_context = options.read_span()
        scope[SCOPE_KEY] = facts
        completed = False

        async def audit_send(message: Message) -> None:
            nonlocal completed
            message_type = message["type"]
            if message_type == "http.response.start":
                facts.status = message["status"]
                if options.devices is not None:
                    cookie = capture.login_cookie(facts, secure=scope.get("scheme") == "https")
                    if cookie is not None:
                        message["headers"] = [*message.get("headers", ()), cookie]
            elif message_type == "http.response.body" and not message.get("more_body", False):
                completed = True
            await send(message)

        token = bind(facts)
        try:
            await self.app(scope, receive, audit_send)
        except BaseException as exc:
            if not (isinstance(exc, asyncio.CancelledError) or _is_disconnect(exc)):
                facts.error_type = type(exc).__name__
            raise
        finally:
            unbind(token)
            # An answer that never finished, without an error of the app's: the client left
            # (servers cancel the task, or frameworks stop streaming).
            facts.disconnected = not completed and facts.error_type is None
            capture.finish(facts)

    async def _start_delivery(self) -> None:
        """Start an AsyncDelivery as a task on this loop (again at a later start-up, on a new
        loop). One that cannot start (it was closed) is logged, not raised: the records stay
        in the spool, and the request or the start-up goes on."""
        self._start_pending = False
        sink = self.audit_log.sink
        if not isinstance(sink, AsyncDelivery):
            return
        try:
            await sink.start()
        except StoreError:
            logger.exception("auditwire: could not start delivery; records stay in the spool")

    def _lifespan_send(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                await self._start_delivery()
            if message["type"] == "lifespan.shutdown.complete":
                # Off the event loop: flushing waits for delivery (not while the store is
                # failing: the records are safe in the spool, and the server wants to stop).
                flush = functools.partial(self.audit_log.flush, 10.0, during_outage=False)
                await asyncio.get_running_loop().run_in_executor(None, flush)
            await send(message)

        return lifespan_send


def _is_disconnect(exc: BaseException) -> bool:
    """Frameworks' own "the client went away" exceptions (Starlette's ``ClientDisconnect``,
    uvicorn's ``ClientDisconnected``), recognised without importing them."""
    return type(exc).__name__ in ("ClientDisconnect", "ClientDisconnected")
