"""What the middleware notes about a request, and the reads that cost, done lazily.

On the request path the middleware only notes facts — references to the headers, the peer,
the status, timings — in a :class:`RequestFacts`, which is also the request's
:class:`~auditwire.capture.context.AuditContext` for handlers. Everything that costs (decoding
headers, walking forwarding chains, sanitising the user agent) happens when the record is
built, after the response has gone out, and is cached on the facts. Untrusted input is made
valid here, to what a record accepts, so a malformed request still gives a record with what
could be safely read.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from auditwire._fastpath import trusted_request
from auditwire._ids import random_hex
from auditwire._time import utc_from_ms
from auditwire.capture.client_ip import ClientAddress, resolve
from auditwire.capture.context import AuditContext
from auditwire.capture.options import Options
from auditwire.capture.trace import trace_info
from auditwire.capture.user_agent import sanitize
from auditwire.record import HTTP_METHOD, MAX_PATH, RequestInfo

__all__ = [
    "REQUEST_ID",
    "RequestFacts",
    "read_asgi_headers",
    "read_wsgi_headers",
    "route_of",
]

#: A well-formed incoming request id (or device cookie): kept as it is.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def read_asgi_headers(scope: Any, options: Options) -> dict[str, list[str]]:
    """The headers a record is made from (``Options.header_names``), decoded; the others are
    skipped undecoded (a browser sends a dozen, a record reads three). Servers give lowercase
    names, as ASGI asks; others are lowered rather than missed."""
    wanted = options.header_names_bytes
    headers: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        if name not in wanted:
            if name.islower():
                continue
            name = name.lower()
            if name not in wanted:
                continue
        headers.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return headers


def read_wsgi_headers(environ: Any, options: Options) -> dict[str, list[str]]:
    """The headers a record is made from, by their CGI names (WSGI servers join repeated
    header lines into one value)."""
    headers: dict[str, list[str]] = {}
    for key, name in options.environ_keys:
        value = environ.get(key)
        if isinstance(value, str):
            headers[name] = [value]
    return headers


class RequestFacts(AuditContext):
    """The audit context of one request, with the raw facts the middleware noted cheaply; the
    costly reads are lazy and cached. One object per request: handlers reach it as their
    :class:`~auditwire.capture.context.AuditContext`, the hand-off builds the record from it."""

    __slots__ = (
        "_address",
        "_headers",
        "_request_id",
        "disconnected",
        "duration_ns",
        "error_type",
        "method",
        "options",
        "path",
        "peer",
        "read_headers",
        "source",
        "span_context",
        "start_ns",
        "status",
    )

    def __init__(
        self,
        options: Options,
        method: str,
        path: str,
        read_headers: Callable[[Any, Options], dict[str, list[str]]],
        peer: str | None,
        source: Any,
    ) -> None:
        AuditContext.__init__(self, options.catalog)
        self.options = options
        self.method = method
        self.path = path
        self.read_headers = read_headers
        self.peer = peer
        self.source = source  # the ASGI scope or WSGI environ, for resolvers and the route
        # Only the monotonic clock here; building turns it into wall-clock time.
        self.start_ns = time.perf_counter_ns()
        self.duration_ns = 0
        self.status: int | None = None
        self.error_type: str | None = None
        self.disconnected = False
        self.span_context: Any = None  # OpenTelemetry's, formatted when built
        self._headers: dict[str, list[str]] | None = None
        self._address: ClientAddress | None = None
        self._request_id: str | None = None

    @property
    def request(self) -> RequestFacts:
        return self

    def started(self) -> datetime:
        """When the request started, in UTC with millisecond precision: the monotonic start
        shifted by the current offset between the clocks (read close to the request, when its
        batch is built)."""
        return utc_from_ms((self.start_ns + time.time_ns() - time.perf_counter_ns()) // 1_000_000)

    def headers(self) -> dict[str, list[str]]:
        """The request headers records are made from (``Options.header_names``), not all."""
        if self._headers is None:
            try:
                self._headers = self.read_headers(self.source, self.options)
            except Exception:  # a server handing over malformed headers must not lose the record
                self._headers = {}
        return self._headers

    def header(self, name: str) -> str | None:
        values = self.headers().get(name)
        return values[0] if values else None

    def client_address(self) -> ClientAddress:
        if self._address is None:
            options = self.options
            self._address = resolve(
                self.peer,
                self.headers().get(options.proxy_header, []),
                options.trusted_proxies,
                options.proxy_header,
            )
        return self._address

    @property
    def ip_address(self) -> str | None:
        return self.client_address().client

    @property
    def user_agent(self) -> str | None:
        return sanitize(self.header("user-agent"))

    @property
    def request_id(self) -> str:
        """The incoming ``X-Request-ID`` when well-formed, else a new one (stable per request)."""
        if self._request_id is None:
            incoming = self.header(self.options.request_id_header)
            self._request_id = incoming if incoming and REQUEST_ID.match(incoming) else random_hex()
        return self._request_id

    def request_info(
        self, *, status: int | None = None, duration_ms: float | None = None
    ) -> RequestInfo:
        """The request part of a record. Every value is made valid here (request id and method
        by their patterns, paths capped and NUL-free, the peer canonical), so it is built
        without validating it again; ``status`` and ``duration_ms`` come checked by the caller.
        """
        method = self.method
        path = self.path
        return trusted_request(
            self.request_id,
            method if method in _METHODS or HTTP_METHOD.match(method) else None,
            self.route,
            path[:MAX_PATH].replace("\x00", "") if len(path) > MAX_PATH or "\x00" in path else path,
            status,
            duration_ms,
            self.client_address().peer,
        )

    def record_fields(self) -> dict[str, Any]:
        """What a record made during this request takes from it — a log call's or an API
        read's: the client IP, user agent, request and trace ids."""
        return {
            "ip_address": self.ip_address,
            "user_agent": self.user_agent,
            "request": self.request_info(),
            "trace": trace_info(self.span_context),
        }

    def route_template(self) -> str | None:
        """The matched route's template, read once from the scope (see :func:`route_of`)."""
        if self.route is None:
            self.route = route_of(self.source)
        return self.route

    def release(self) -> None:
        """Let go of the scope (or environ) once the records are built: it holds these facts
        under the middleware's key and they hold it, a cycle only the garbage collector would
        free — with everything the scope references, request after request."""
        self.source = None

    def cookie(self, name: str) -> str | None:
        for line in self.headers().get("cookie", []):
            for pair in line.split(";"):
                key, _, value = pair.strip().partition("=")
                if key == name:
                    return value.strip('"')
        return None


def route_of(source: Any) -> str | None:
    """The matched route's template (``/users/{id}``), which keeps cardinality bounded where
    the raw path would not; ASGI routers (Starlette, FastAPI) leave it in ``scope["route"]``."""
    route = source.get("route") if isinstance(source, dict) else None
    path = getattr(route, "path", None)
    return path[:MAX_PATH].replace("\x00", "") if isinstance(path, str) else None
