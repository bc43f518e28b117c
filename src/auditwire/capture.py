"""What the ASGI and WSGI middleware share: which requests to audit, what to read from them,
and how the raw facts of a request become an audit record.

The split is by cost. On the request path the middleware only notes facts (references to the
headers, the peer, the status, timings, the handler's :class:`~auditwire.context.AuditContext`)
and hands them off. Everything that costs — decoding headers, walking forwarding chains,
parsing the user agent, validating and rendering the record — runs when the hand-off builds a
batch of records, after the response has gone out (see :mod:`auditwire.handoff`). Untrusted
input is sanitised there to what a record accepts, so a malformed request still produces a
record with what could be safely read.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from auditwire._ids import random_hex
from auditwire.client_ip import ClientAddress, ProxyHeader, TrustedProxies, resolve
from auditwire.context import AuditContext
from auditwire.errors import InvalidRecordError, MissingDependencyError
from auditwire.record import (
    MAX_PATH,
    Actor,
    AuditRecord,
    DeviceInfo,
    Outcome,
    RequestInfo,
    TraceInfo,
    utc_from_ms,
)
from auditwire.user_agent import UserAgentParser, sanitize

if TYPE_CHECKING:
    from auditwire.audit_log import AuditLog
    from auditwire.devices import DeviceRegistry

logger = logging.getLogger("auditwire")

#: The action of an audited request whose handler named none.
DEFAULT_ACTION = "http.request"
#: The action of a 401/403 answer whose handler named none.
DENIED_ACTION = "access_denied"
DEFAULT_EXCLUDED_PATHS: tuple[str, ...] = (
    r"/health(z|/.*)?",
    r"/(livez|readyz|metrics|favicon\.ico)",
    r"/static/.*",
)
#: Header values that are never stored, whatever ``capture_headers`` says.
NEVER_STORED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
#: The actor of a request nobody authenticated.
ANONYMOUS = Actor(type="user", name="anonymous")
MAX_HEADER_VALUE = 256
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_METHOD = re.compile(r"^[A-Z]{1,16}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

ActorResolver = Callable[[Any], "Actor | Mapping[str, Any] | None"]
TenantResolver = Callable[[Any], "str | None"]


def _span_reader(enabled: bool | None) -> Callable[[], Any] | None:
    """A function returning the active OpenTelemetry span's context, or ``None`` when trace
    capture is off. ``enabled=None`` turns it on when OpenTelemetry is installed and a real
    tracer provider is configured (reading the span costs about a microsecond per request, not
    worth paying when nothing traces); ``True`` requires OpenTelemetry."""
    if enabled is False:
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        if enabled:
            raise MissingDependencyError("trace_context=True", "otel") from None
        return None
    if enabled is None and type(trace.get_tracer_provider()).__name__ in (
        "ProxyTracerProvider",
        "NoOpTracerProvider",
    ):
        return None
    get_current_span = trace.get_current_span

    def read() -> Any:
        return get_current_span().get_span_context()

    return read


def read_asgi_headers(scope: Any, capture: Capture) -> dict[str, list[str]]:
    """The headers a record is made from (``Capture.header_names``), decoded; the others are
    skipped undecoded (a browser sends a dozen, a record reads three). Servers give lowercase
    names, as ASGI asks; others are lowered rather than missed."""
    wanted = capture.header_names_bytes
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


def read_wsgi_headers(environ: Any, capture: Capture) -> dict[str, list[str]]:
    """The headers a record is made from, by their CGI names (WSGI servers join repeated
    header lines into one value)."""
    headers: dict[str, list[str]] = {}
    for key, name in capture.environ_keys:
        value = environ.get(key)
        if isinstance(value, str):
            headers[name] = [value]
    return headers


def _environ_key(header: str) -> str:
    upper = header.upper().replace("-", "_")
    return upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{upper}"


class RequestFacts(AuditContext):
    """The audit context of one request, with the raw facts the middleware noted cheaply; the
    costly reads are lazy and cached. One object per request: handlers reach it as their
    :class:`~auditwire.context.AuditContext`, the hand-off builds the record from it."""

    __slots__ = (
        "_address",
        "_headers",
        "_request_id",
        "capture",
        "disconnected",
        "duration_ns",
        "error_type",
        "method",
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
        capture: Capture,
        method: str,
        path: str,
        read_headers: Callable[[Any, Capture], dict[str, list[str]]],
        peer: str | None,
        source: Any,
    ) -> None:
        AuditContext.__init__(self, capture.catalog)
        self.capture = capture
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
        """The request headers records are made from (``Capture.header_names``), not all."""
        if self._headers is None:
            try:
                self._headers = self.read_headers(self.source, self.capture)
            except Exception:  # a server handing over malformed headers must not lose the record
                self._headers = {}
        return self._headers

    def header(self, name: str) -> str | None:
        values = self.headers().get(name)
        return values[0] if values else None

    def client_address(self) -> ClientAddress:
        if self._address is None:
            capture = self.capture
            self._address = resolve(
                self.peer,
                self.headers().get(capture.proxy_header, []),
                capture.trusted_proxies,
                capture.proxy_header,
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
            incoming = self.header(self.capture.request_id_header)
            self._request_id = (
                incoming if incoming and _REQUEST_ID.match(incoming) else random_hex()
            )
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
        return RequestInfo._sanitised(
            self.request_id,
            method if method in _METHODS or _METHOD.match(method) else None,
            self.route,
            path[:MAX_PATH].replace("\x00", "") if len(path) > MAX_PATH or "\x00" in path else path,
            status,
            duration_ms,
            self.client_address().peer,
        )

    def build(self) -> Sequence[AuditRecord]:
        """The records of this request (run by the hand-off: see :meth:`Capture.build`).

        Then the scope (or environ) is let go: it holds these facts under ``SCOPE_KEY`` and
        they hold it, a cycle only the garbage collector would free — with everything the
        scope references, request after request."""
        try:
            return self.capture.build(self)
        finally:
            self.source = None

    def cookie(self, name: str) -> str | None:
        for line in self.headers().get("cookie", []):
            for pair in line.split(";"):
                key, _, value = pair.strip().partition("=")
                if key == name:
                    return value.strip('"')
        return None


def _route_template(source: Any) -> str | None:
    """The matched route's template (``/users/{id}``), which keeps cardinality bounded where
    the raw path would not; ASGI routers (Starlette, FastAPI) leave it in ``scope["route"]``."""
    route = source.get("route") if isinstance(source, dict) else None
    path = getattr(route, "path", None)
    return path[:MAX_PATH].replace("\x00", "") if isinstance(path, str) else None


def scope_user(source: Any) -> Actor | None:
    """The actor an ASGI authentication middleware left in ``scope["user"]`` (Starlette's
    ``BaseUser``: ``is_authenticated``, ``identity``, ``display_name``)."""
    user = source.get("user") if isinstance(source, dict) else None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    identity = getattr(user, "identity", None) or getattr(user, "id", None)
    name = getattr(user, "display_name", None) or getattr(user, "username", None)
    email = getattr(user, "email", None)
    return Actor(
        type="user",
        id=str(identity)[:256] if identity is not None else None,
        email=email if isinstance(email, str) else None,
        name=str(name)[:256] if name is not None else None,
    )


def trace_info(span_context: Any) -> TraceInfo | None:
    if span_context is None or not span_context.is_valid:
        return None
    return TraceInfo(format(span_context.trace_id, "032x"), format(span_context.span_id, "016x"))


def _compile_paths(patterns: Iterable[str]) -> re.Pattern[str] | None:
    patterns = list(patterns)
    if not patterns:
        return None
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"path pattern {pattern!r} is not a regular expression: {exc}"
            ) from None
    return re.compile("|".join(f"(?:{p})" for p in patterns))


class Capture:
    """Options of the middleware, parsed once, and the building of records from facts.

    - ``trusted_proxies``: addresses/networks whose forwarding header is believed;
      ``proxy_header`` names that header (``x-forwarded-for`` or ``forwarded``).
    - ``methods``: audit only these methods (default all); ``include_paths`` and
      ``exclude_paths``: full-match regexes (health checks and static files are excluded by
      default); ``only_named``: audit only requests whose action was named (by the handler or
      ``actions``).
    - ``actions``: ``{"POST /api-keys/{id}/rotate": "api_key.rotated"}`` by route template.
    - ``actor_resolver(scope_or_environ)`` and ``tenant_resolver(...)``: hooks; a hook that
      raises is logged and ignored. ``tenant_param``: the path parameter naming the tenant.
    - ``capture_headers``: request headers copied into metadata (credentials never are).
    - ``devices``: a :class:`~auditwire.devices.DeviceRegistry` turns successful logins from an
      unknown device into ``user.new_device_logged_in`` records.
    - ``trace_context``: record the active OpenTelemetry trace and span ids (default: when a
      tracer provider is configured).
    """

    def __init__(
        self,
        audit_log: AuditLog,
        *,
        trusted_proxies: Iterable[str] = (),
        proxy_header: ProxyHeader = "x-forwarded-for",
        methods: Iterable[str] | None = None,
        include_paths: Iterable[str] = (),
        exclude_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS,
        only_named: bool = False,
        actions: Mapping[str, str] | None = None,
        actor_resolver: ActorResolver | None = None,
        tenant_resolver: TenantResolver | None = None,
        tenant_param: str | None = "tenant",
        capture_headers: Iterable[str] = (),
        request_id_header: str = "x-request-id",
        parse_user_agent: bool = True,
        devices: DeviceRegistry | None = None,
        login_actions: Iterable[str] = ("login", "user.logged_in"),
        device_cookie: str = "auditwire_device",
        trace_context: bool | None = None,
    ) -> None:
        if proxy_header not in ("x-forwarded-for", "forwarded"):
            raise ValueError(
                f"proxy_header must be 'x-forwarded-for' or 'forwarded', not {proxy_header!r}"
            )
        self.audit_log = audit_log
        self.catalog = audit_log.catalog
        self.trusted_proxies = TrustedProxies(trusted_proxies)
        self.proxy_header: ProxyHeader = proxy_header
        self.methods = None if methods is None else frozenset(m.upper() for m in methods)
        self.include = _compile_paths(include_paths)
        self.exclude = _compile_paths(exclude_paths)
        self.only_named = only_named
        self.actions: dict[tuple[str, str], str] = {}
        for key, action in (actions or {}).items():
            method, _, route = key.partition(" ")
            if not route.startswith("/"):
                raise ValueError(f"actions key {key!r} must read 'METHOD /route/template'")
            self.catalog.resolve(action)
            self.actions[(method.upper(), route)] = action
        self.actor_resolver = actor_resolver
        self.tenant_resolver = tenant_resolver
        self.tenant_param = tenant_param
        self.capture_headers = tuple(
            h.lower() for h in capture_headers if h.lower() not in NEVER_STORED_HEADERS
        )
        self.request_id_header = request_id_header.lower()
        #: The request headers records are made from; the middleware decodes no others.
        self.header_names = frozenset(
            {
                "user-agent",
                self.request_id_header,
                proxy_header,
                *self.capture_headers,
                *(("cookie",) if devices is not None else ()),
            }
        )
        self.header_names_bytes = frozenset(h.encode("latin-1") for h in self.header_names)
        self.environ_keys = tuple((_environ_key(h), h) for h in sorted(self.header_names))
        self.user_agents = UserAgentParser() if parse_user_agent else None
        self.devices = devices
        self.login_actions = frozenset(login_actions)
        self.device_cookie = device_cookie
        self.read_span = _span_reader(trace_context)

    def wants(self, method: str, path: str) -> bool:
        """Whether a request is audited at all (a cheap check on the request path)."""
        if self.methods is not None and method not in self.methods:
            return False
        if self.exclude is not None and self.exclude.fullmatch(path):
            return False
        return self.include is None or self.include.fullmatch(path) is not None

    def _hook(self, name: str, hook: Callable[[Any], Any], source: Any) -> Any:
        try:
            return hook(source)
        except Exception:
            logger.exception("auditwire: the %s hook raised; ignoring it", name)
            return None

    def finish(self, facts: RequestFacts) -> None:
        """Close the facts of a finished request and hand them off. Never raises: a failure
        here is logged, and the application's response is already on its way. Only the
        application's own hooks run here (they may rely on request-local state); the default
        readers of the scope run when the batch is built."""
        try:
            facts.duration_ns = time.perf_counter_ns() - facts.start_ns
            if facts.skipped:
                return
            if self.only_named and facts.action is None:
                if facts.route is None:
                    facts.route = _route_template(facts.source)
                if (facts.method, facts.route or "") not in self.actions:
                    return
            if self.actor_resolver is not None and facts.actor is None:
                facts.actor = self._hooked_actor(facts.source)
            if self.tenant_resolver is not None and facts.tenant is None:
                tenant = self._hook("tenant_resolver", self.tenant_resolver, facts.source)
                facts.tenant = tenant if isinstance(tenant, str) else None
            self.audit_log.submit(facts)
        except Exception:
            logger.exception("auditwire: could not hand off the audit record of a request")

    def _hooked_actor(self, source: Any) -> Actor | None:
        found = self._hook("actor_resolver", self.actor_resolver, source)  # type: ignore[arg-type]
        if found is None or isinstance(found, Actor):
            return found
        try:
            return Actor.from_api(found)
        except InvalidRecordError:
            logger.exception("auditwire: actor_resolver returned an invalid actor")
            return None

    # -- when the hand-off builds a batch ----------------------------------------------------

    def build(self, facts: RequestFacts) -> list[AuditRecord]:
        """The records of a finished request: its own, and a new-device login when one is
        detected. Invalid handler input cannot get this far; anything else that goes wrong
        degrades the record instead of losing it."""
        try:
            record = self._record(facts)
        except InvalidRecordError as exc:
            logger.error("auditwire: degraded an audit record: %s", exc)
            record = self._degraded(facts, exc)
        records = [record]
        if self.devices is not None:
            login = self._new_device_login(facts, record)
            if login is not None:
                records.append(login)
        return records

    def _path_tenant(self, source: Any) -> str | None:
        if self.tenant_param is None or not isinstance(source, dict):
            return None
        tenant = (source.get("path_params") or {}).get(self.tenant_param)
        return tenant if isinstance(tenant, str) else None

    def _outcome(self, facts: RequestFacts) -> Outcome:
        if facts.outcome is not None:
            return facts.outcome
        if facts.error_type is not None or facts.disconnected:
            return "error"
        status = facts.status or 500
        if status >= 500:
            return "error"
        return "failure" if status >= 400 else "success"

    def _request_info(self, facts: RequestFacts) -> RequestInfo:
        status = facts.status
        if facts.disconnected and status is None:
            status = 499  # the client closed the connection before an answer
        elif facts.error_type is not None and status is None:
            status = 500
        return facts.request_info(
            status=status if isinstance(status, int) and 100 <= status <= 599 else None,
            duration_ms=facts.duration_ns // 1000 / 1000,  # whole µs: what round(_, 3) keeps
        )

    def _metadata(self, facts: RequestFacts) -> dict[str, Any]:
        metadata = dict(facts.metadata)
        if facts.error_type is not None:
            metadata["error"] = {"type": facts.error_type}
        if facts.disconnected:
            metadata["disconnected"] = True
        if self.capture_headers:
            headers = facts.headers()
            captured = {
                name: headers[name][0][:MAX_HEADER_VALUE]
                for name in self.capture_headers
                if name in headers
            }
            if captured:
                metadata["headers"] = captured
        return metadata

    def _record(self, facts: RequestFacts) -> AuditRecord:
        route = facts.route
        if route is None:
            route = facts.route = _route_template(facts.source)
        action = facts.action
        if action is None and self.actions:
            action = self.actions.get((facts.method, route or ""))
        if action is None:
            action = DENIED_ACTION if facts.status in (401, 403) else DEFAULT_ACTION
        user_agent = facts.user_agent
        parser = self.user_agents
        device = parser.parse(user_agent) if parser is not None and user_agent else None
        if facts.device_id is not None:
            device = replace(device or DeviceInfo(), id=facts.device_id)
        span = facts.span_context
        return self.audit_log.build_captured(
            action,
            actor=facts.actor or scope_user(facts.source) or ANONYMOUS,
            target=facts.target,
            outcome=self._outcome(facts),
            metadata=self._metadata(facts),
            category=facts.category,
            ip_address=facts.ip_address,
            user_agent=user_agent,
            tenant=facts.tenant or self._path_tenant(facts.source),
            timestamp=facts.started(),
            request=self._request_info(facts),
            trace=None if span is None else trace_info(span),
            device=device,
        )

    def _degraded(self, facts: RequestFacts, error: InvalidRecordError) -> AuditRecord:
        return self.audit_log.build(
            DEFAULT_ACTION,
            actor=ANONYMOUS,
            outcome=self._outcome(facts),
            metadata={"auditwire": {"capture_error": str(error)[:500]}},
            timestamp=facts.started(),
            request=self._request_info(facts),
            ip_address=facts.ip_address,
        )

    def _new_device_login(self, facts: RequestFacts, record: AuditRecord) -> AuditRecord | None:
        device_id = facts.device_id
        if (
            self.devices is None
            or record.action not in self.login_actions
            or record.outcome != "success"
            or device_id is None
        ):
            return None
        user_key = record.actor.id or record.actor.email
        if user_key is None or not self.devices.is_new(user_key, device_id, record.tenant):
            return None
        device = record.device or DeviceInfo(id=device_id)
        return self.audit_log.build(
            "user.new_device_logged_in",
            actor=record.actor,
            target={"type": "user", "id": record.actor.id, "email": record.actor.email},
            metadata={
                "deviceId": device_id,
                "ipAddress": record.ip_address,
                "browser": device.browser,
                "os": device.os,
            },
            ip_address=record.ip_address,
            user_agent=record.user_agent,
            tenant=record.tenant,
            timestamp=record.timestamp,
            request=record.request,
            trace=record.trace,
            device=device,
        )

    def device_cookie_header(self, facts: RequestFacts, secure: bool) -> tuple[bytes, bytes] | None:
        """On a login response: note the device id, and the ``Set-Cookie`` header that gives a
        new device its id (``None`` when the device already has one)."""
        if facts.device_id is not None:
            return None
        known = facts.cookie(self.device_cookie)
        if known and _REQUEST_ID.match(known):
            facts.device_id = known
            return None
        facts.device_id = os.urandom(16).hex()
        attributes = "; Path=/; Max-Age=63072000; HttpOnly; SameSite=Lax"
        value = f"{self.device_cookie}={facts.device_id}{attributes}{'; Secure' if secure else ''}"
        return b"set-cookie", value.encode("latin-1")
