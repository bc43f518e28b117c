"""The applications the benchmarks compare: one minimal route, wrapped in different ways.

``VARIANT`` (an environment variable, for the server runs) picks the wrapping:

- ``bare`` — the app alone;
- ``minimal`` — a hand-written pure ASGI/WSGI audit middleware that notes method, path and
  status into a list: the least any audit middleware pays;
- ``floor`` — a hand-written middleware that makes, in the request, the record auditwire
  keeps, as one plain dict built as cheaply as Python allows (an id, a timestamp, the parsed
  user agent, a request id, a message; nothing validated, no proxies, no handler context):
  what any audit record costs in Python before a library adds anything;
- ``auditwire`` — auditwire's middleware writing to a store that discards records (capture
  and record building are measured, storage is not);
- ``auditwire+spool`` — the same with an Elasticsearch store, as in production: records are
  also encoded as ECS documents and appended to the spool (under ``$AUDITWIRE_SPOOL``). The
  cluster's address is unreachable, so nothing is sent: sending is ``bench/delivery.py``'s;
- ``auditwire+es`` and ``auditwire+es-async`` (under uvicorn, with a cluster at
  ``$BENCH_ES_URL``) — records delivered to it, by the delivery thread and by
  :class:`~auditwire.aio.AsyncDelivery` on the server's event loop;
- ``otel`` — OpenTelemetry's ASGI/WSGI middleware with an SDK tracer provider.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from auditwire import AuditLog, AuditRecord
from auditwire._ids import new_id, random_hex
from auditwire.asgi import AuditMiddleware as AsgiAudit
from auditwire.capture.user_agent import UserAgentParser
from auditwire.wsgi import AuditMiddleware as WsgiAudit

VARIANTS = ("bare", "minimal", "floor", "auditwire", "auditwire+spool", "otel")
CLUSTER_VARIANTS = ("auditwire+es", "auditwire+es-async")
#: An address nothing listens on: the spooled variant's delivery worker only backs off.
UNREACHABLE = "http://127.0.0.1:9"


class CountingSink:
    """Discards records, counting them: isolates capture from storage."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, records: Sequence[AuditRecord]) -> None:
        self.count += len(records)

    def close(self) -> None:
        pass


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


def starlette_app() -> Starlette:
    return Starlette(routes=[Route("/users/{user_id}", hello)])


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.get("/users/<user_id>")
    def user(user_id: str) -> str:
        return "hello"

    return app


class MinimalAsgiAudit:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.events: list[tuple[str, str, int]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def wrapped(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            self.events.append((scope["method"], scope["path"], status))


class MinimalWsgiAudit:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.events: list[tuple[str, str, int]] = []

    def __call__(self, environ: Any, start_response: Any) -> Any:
        status = [500]

        def wrapped(code: str, headers: Any, exc_info: Any = None) -> Any:
            status[0] = int(code[:3])
            return start_response(code, headers, exc_info)

        try:
            return self.app(environ, wrapped)
        finally:
            self.events.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], status[0]))


class FloorRecords:
    """The ``floor`` variants' records: plain dicts, kept in batches of 64 then discarded."""

    def __init__(self) -> None:
        self.user_agents = UserAgentParser()  # auditwire's cached parse: a dict lookup
        self.records: list[dict[str, Any]] = []
        self.count = 0

    def add(
        self,
        method: str,
        path: str,
        route: str | None,
        status: int,
        started_ns: int,
        client: str | None,
        user_agent: str | None,
    ) -> None:
        device = self.user_agents.parse(user_agent) if user_agent else None
        self.records.append(
            {
                "id": new_id(),
                "action": "http.request",
                "category": "http",
                "actor": {"type": "user", "name": "anonymous"},
                "outcome": "success" if status < 400 else "failure",
                "ipAddress": client,
                "userAgent": user_agent,
                "device": device,
                "timestamp": datetime.fromtimestamp(time.time_ns() // 10**6 / 1000, timezone.utc),
                "message": f"{method} {path} by anonymous",
                "request": {
                    "id": random_hex(),
                    "method": method,
                    "route": route,
                    "path": path,
                    "status": status,
                    "durationMs": (time.perf_counter_ns() - started_ns) / 1e6,
                },
            }
        )
        if len(self.records) == 64:
            self.count += 64
            self.records = []


class FloorAsgiAudit:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.records = FloorRecords()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter_ns()
        status = 500

        async def wrapped(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            user_agent = None
            for name, value in scope["headers"]:
                if name == b"user-agent":
                    user_agent = value.decode("latin-1")
            client = scope.get("client")
            self.records.add(
                scope["method"],
                scope["path"],
                getattr(scope.get("route"), "path", None),
                status,
                started,
                client[0] if client else None,
                user_agent,
            )


class FloorWsgiAudit:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.records = FloorRecords()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        started = time.perf_counter_ns()
        status = [500]

        def wrapped(code: str, headers: Any, exc_info: Any = None) -> Any:
            status[0] = int(code[:3])
            return start_response(code, headers, exc_info)

        try:
            return self.app(environ, wrapped)
        finally:
            self.records.add(
                environ["REQUEST_METHOD"],
                environ["PATH_INFO"],
                None,
                status[0],
                started,
                environ.get("REMOTE_ADDR"),
                environ.get("HTTP_USER_AGENT"),
            )


def audit_log(variant: str = "auditwire") -> AuditLog:
    if variant == "auditwire+spool":
        # Its worker's connection failures are expected here; keep them off the report.
        logging.getLogger("auditwire").setLevel(logging.CRITICAL)
        return AuditLog(UNREACHABLE)
    if variant == "auditwire+es":
        return AuditLog(os.environ["BENCH_ES_URL"])
    if variant == "auditwire+es-async":
        from elasticsearch import AsyncElasticsearch

        from auditwire.delivery.aio import AsyncDelivery
        from auditwire.stores.elasticsearch import ElasticsearchStore

        url = os.environ["BENCH_ES_URL"]
        store = ElasticsearchStore(url, prefix="auditwire-async")
        spool = Path(os.environ["AUDITWIRE_SPOOL"]) / f"async-{os.getpid()}"
        return AuditLog(AsyncDelivery(store, spool, client=AsyncElasticsearch(url)))
    return AuditLog(CountingSink())


def asgi_app(variant: str) -> Any:
    app = starlette_app()
    if variant == "minimal":
        return MinimalAsgiAudit(app)
    if variant == "floor":
        return FloorAsgiAudit(app)
    if variant.startswith("auditwire"):
        return AsgiAudit(app, audit_log(variant))
    if variant == "otel":
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.sdk.trace import TracerProvider

        return OpenTelemetryMiddleware(app, tracer_provider=TracerProvider())
    return app


def wsgi_app(variant: str) -> Any:
    app = flask_app()
    if variant == "minimal":
        return MinimalWsgiAudit(app.wsgi_app)
    if variant == "floor":
        return FloorWsgiAudit(app.wsgi_app)
    if variant.startswith("auditwire"):
        return WsgiAudit(app.wsgi_app, audit_log(variant))
    if variant == "otel":
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
        from opentelemetry.sdk.trace import TracerProvider

        return OpenTelemetryMiddleware(app.wsgi_app, tracer_provider=TracerProvider())
    return app.wsgi_app


#: For the server runs (``uvicorn bench.apps:app``, ``gunicorn bench.apps:wsgi``), with
#: ``VARIANT`` and ``BENCH_SERVER`` set: only the server's own app is made (each audit log
#: starts its own threads).
_SERVER = os.environ.get("BENCH_SERVER")
app: Any = asgi_app(os.environ.get("VARIANT", "bare")) if _SERVER == "uvicorn" else None
wsgi: Any = wsgi_app(os.environ.get("VARIANT", "bare")) if _SERVER == "gunicorn" else None
