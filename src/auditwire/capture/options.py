"""The middleware's options: declared once as typed keywords, parsed once into :class:`Options`.

:class:`CaptureOptions` is what the ASGI and WSGI middleware (and the framework integrations)
accept as keyword arguments, so a type checker — and Starlette's typed
``Middleware(AuditMiddleware, ...)``/``app.add_middleware`` — catches a misspelt or mistyped
option. :class:`Options` is them parsed and checked at start-up, with what the request path
reads precomputed (the header names records are made from, as bytes and as CGI keys).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from auditwire.capture.client_ip import ProxyHeader, TrustedProxies
from auditwire.capture.trace import span_reader
from auditwire.capture.user_agent import UserAgentParser
from auditwire.catalog import EventCatalog
from auditwire.record import Actor

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT_EXCLUDED_PATHS",
    "NEVER_STORED_HEADERS",
    "ActorResolver",
    "CaptureOptions",
    "KnownDevices",
    "Options",
    "TenantResolver",
]

DEFAULT_EXCLUDED_PATHS: tuple[str, ...] = (
    r"/health(z|/.*)?",
    r"/(livez|readyz|metrics|favicon\.ico)",
    r"/static/.*",
)
#: Header values that are never stored, whatever ``capture_headers`` says.
NEVER_STORED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)

ActorResolver = Callable[[Any], "Actor | Mapping[str, Any] | None"]
TenantResolver = Callable[[Any], "str | None"]


class KnownDevices(Protocol):
    """Where new-device detection remembers which devices each user has logged in from:
    :class:`~auditwire.capture.devices.DeviceRegistry`, or an application's own."""

    def is_new(self, user_key: str, device_id: str, tenant: str | None = None) -> bool:
        """Remember the pair; ``True`` when the user had other devices but not this one."""
        ...


class CaptureOptions(TypedDict, total=False):
    """The middleware's keyword options (all optional).

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
    - ``request_id_header``: the incoming request id (default ``x-request-id``).
    - ``parse_user_agent``: parse the user agent into browser, OS and device (default on).
    - ``devices``: a :class:`~auditwire.capture.devices.DeviceRegistry` turns successful logins
      (``login_actions``) from an unknown device into ``user.new_device_logged_in`` records;
      ``device_cookie`` names the cookie that identifies a device.
    - ``trace_context``: record the active OpenTelemetry trace and span ids (default: when a
      tracer provider is configured).
    """

    trusted_proxies: Iterable[str]
    proxy_header: ProxyHeader
    methods: Iterable[str] | None
    include_paths: Iterable[str]
    exclude_paths: Iterable[str]
    only_named: bool
    actions: Mapping[str, str] | None
    actor_resolver: ActorResolver | None
    tenant_resolver: TenantResolver | None
    tenant_param: str | None
    capture_headers: Iterable[str]
    request_id_header: str
    parse_user_agent: bool
    devices: KnownDevices | None
    login_actions: Iterable[str]
    device_cookie: str
    trace_context: bool | None


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


def _environ_key(header: str) -> str:
    upper = header.upper().replace("-", "_")
    return upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{upper}"


class Options:
    """:class:`CaptureOptions` parsed and checked (actions against ``catalog``); see there."""

    def __init__(self, catalog: EventCatalog, **options: Unpack[CaptureOptions]) -> None:
        unknown = set(options) - set(CaptureOptions.__annotations__)
        if unknown:
            raise TypeError(f"unknown capture option(s): {', '.join(sorted(unknown))}")
        proxy_header = options.get("proxy_header", "x-forwarded-for")
        if proxy_header not in ("x-forwarded-for", "forwarded"):
            raise ValueError(
                f"proxy_header must be 'x-forwarded-for' or 'forwarded', not {proxy_header!r}"
            )
        self.catalog = catalog
        self.trusted_proxies = TrustedProxies(options.get("trusted_proxies", ()))
        self.proxy_header: ProxyHeader = proxy_header
        methods = options.get("methods")
        self.methods = None if methods is None else frozenset(m.upper() for m in methods)
        self.include = _compile_paths(options.get("include_paths", ()))
        self.exclude = _compile_paths(options.get("exclude_paths", DEFAULT_EXCLUDED_PATHS))
        self.only_named: bool = options.get("only_named", False)
        self.actions: dict[tuple[str, str], str] = {}
        for key, action in (options.get("actions") or {}).items():
            method, _, route = key.partition(" ")
            if not route.startswith("/"):
                raise ValueError(f"actions key {key!r} must read 'METHOD /route/template'")
            catalog.resolve(action)
            self.actions[(method.upper(), route)] = action
        self.actor_resolver: ActorResolver | None = options.get("actor_resolver")
        self.tenant_resolver: TenantResolver | None = options.get("tenant_resolver")
        self.tenant_param: str | None = options.get("tenant_param", "tenant")
        self.capture_headers = tuple(
            h.lower()
            for h in options.get("capture_headers", ())
            if h.lower() not in NEVER_STORED_HEADERS
        )
        self.request_id_header: str = options.get("request_id_header", "x-request-id").lower()
        self.devices: KnownDevices | None = options.get("devices")
        #: The request headers records are made from; the middleware decodes no others.
        self.header_names = frozenset(
            {
                "user-agent",
                self.request_id_header,
                proxy_header,
                *self.capture_headers,
                *(("cookie",) if self.devices is not None else ()),
            }
        )
        self.header_names_bytes = frozenset(h.encode("latin-1") for h in self.header_names)
        self.environ_keys = tuple((_environ_key(h), h) for h in sorted(self.header_names))
        self.user_agents = UserAgentParser() if options.get("parse_user_agent", True) else None
        self.login_actions = frozenset(options.get("login_actions", ("login", "user.logged_in")))
        self.device_cookie: str = options.get("device_cookie", "auditwire_device")
        self.read_span = span_reader(options.get("trace_context"))

    def wants(self, method: str, path: str) -> bool:
        """Whether a request is audited at all (a cheap check on the request path)."""
        if self.methods is not None and method not in self.methods:
            return False
        if self.exclude is not None and self.exclude.fullmatch(path):
            return False
        return self.include is None or self.include.fullmatch(path) is not None
