"""The ASGI middleware over real Starlette and FastAPI apps, driven in-process by httpx."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import auditwire
from auditwire import Actor, AuditLog, InvalidRecordError, Target
from auditwire.asgi import AuditMiddleware
from auditwire.capture.devices import DeviceRegistry
from tests.records import written as records

pytestmark = pytest.mark.anyio

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def rotate(request: Request) -> Response:
    await asyncio.sleep(0)
    context = auditwire.current()
    assert context is not None
    context.set_actor(type="user", id=request.headers.get("x-user", "u1"), email="ops@acme.test")
    context.set_action(
        "api_key.rotated",
        target={"type": "api_key", "id": request.path_params["key"], "name": "Deploy"},
        metadata={"apiKey": "sk_live_0123456789ab1337", "note": request.headers.get("x-note")},
    )
    return JSONResponse({"rotated": request.path_params["key"]})


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


async def secret(request: Request) -> Response:
    return PlainTextResponse("no", status_code=int(request.query_params.get("status", "403")))


class Boom(Exception):
    pass


async def boom(request: Request) -> Response:
    raise Boom("kaput")


def sync_handler(request: Request) -> Response:
    # Sync endpoints run in a worker thread: the context object still reaches them.
    context = auditwire.current()
    assert context is not None
    context.set_actor(id="sync-user")
    return PlainTextResponse("sync")


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")
    await websocket.close()


def starlette_app(**options: Any) -> tuple[Starlette, AuditMiddleware]:
    app = Starlette(
        routes=[
            Route("/keys/{key}/rotate", rotate, methods=["POST"]),
            Route("/hello", hello),
            Route("/secret", secret),
            Route("/boom", boom),
            Route("/sync", sync_handler),
            Route("/health", hello),
            Route("/t/{tenant}/things", hello),
            Route("/t/{tenant}/keys/{key}/rotate", rotate, methods=["POST"]),
            WebSocketRoute("/ws", ws),
        ]
    )
    return app, AuditMiddleware(app, options.pop("audit_log"), **options)


def client(app: Any, peer: str = "203.0.113.5", *, raise_errors: bool = True) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(
        app=app, client=(peer, 50000), raise_app_exceptions=raise_errors
    )
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_a_named_request_becomes_a_complete_record(log: AuditLog) -> None:
    _, app = starlette_app(audit_log=log)
    async with client(app) as c:
        response = await c.post(
            "/keys/key_9/rotate", headers={"user-agent": FIREFOX, "x-request-id": "req-abc.1"}
        )
    assert response.status_code == 200
    (record,) = records(log)
    assert record.action == "api_key.rotated"
    assert record.category == "api_key"
    assert record.actor.id == "u1"
    assert record.target is not None and record.target.id == "key_9"
    assert record.metadata == {"apiKey": "***1337", "note": None}
    assert record.message == "The API key Deploy ending with ***1337 was rotated"
    assert record.ip_address == "203.0.113.5"
    assert record.user_agent == FIREFOX
    assert record.device is not None
    assert (record.device.browser, record.device.os) == ("Firefox", "Linux")
    assert record.request is not None
    assert record.request.route == "/keys/{key}/rotate"
    assert record.request.path == "/keys/key_9/rotate"
    assert record.request.method == "POST"
    assert record.request.status == 200
    assert record.request.id == "req-abc.1"
    assert record.request.duration_ms is not None and record.request.duration_ms >= 0


@pytest.mark.parametrize(
    ("path", "status", "action", "outcome"),
    [
        pytest.param("/hello", 200, "http.request", "success", id="success"),
        pytest.param("/nowhere", 404, "http.request", "failure", id="not-found"),
        pytest.param("/secret?status=401", 401, "access_denied", "failure", id="unauthenticated"),
        pytest.param("/secret?status=403", 403, "access_denied", "failure", id="forbidden"),
        pytest.param("/secret?status=503", 503, "http.request", "error", id="server-error"),
    ],
)
async def test_outcome_follows_the_status(
    log: AuditLog, path: str, status: int, action: str, outcome: str
) -> None:
    _, app = starlette_app(audit_log=log)
    async with client(app) as c:
        assert (await c.get(path)).status_code == status
    (record,) = records(log)
    assert (record.action, record.outcome) == (action, outcome)
    assert record.request is not None and record.request.status == status


async def test_an_exception_is_recorded_as_error_and_reraised_untouched(log: AuditLog) -> None:
    _, app = starlette_app(audit_log=log)
    async with client(app) as c:
        with pytest.raises(Boom, match="kaput"):
            await c.get("/boom")
    (record,) = records(log)
    assert record.outcome == "error"
    assert record.metadata["error"] == {"type": "Boom"}
    assert record.request is not None and record.request.status == 500


async def test_client_disconnect_mid_stream_is_recorded(log: AuditLog) -> None:
    async def forever() -> AsyncIterator[bytes]:
        while True:
            yield b"chunk"
            await asyncio.sleep(0.01)

    async def stream(request: Request) -> Response:
        return StreamingResponse(forever())

    app = AuditMiddleware(Starlette(routes=[Route("/stream", stream)]), log)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/stream", "raw_path": b"/stream", "query_string": b"",
        "root_path": "", "headers": [], "client": ("198.51.100.4", 1), "server": ("t", 80),
    }  # fmt: skip
    sent: list[MutableMapping[str, Any]] = []
    body_seen = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await body_seen.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            body_seen.set()

    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    (record,) = records(log)
    assert record.outcome == "error"
    assert record.metadata.get("disconnected") is True
    assert record.request is not None and record.request.status == 200


async def test_a_cancelled_request_is_recorded(log: AuditLog) -> None:
    started = asyncio.Event()

    async def slow(request: Request) -> Response:
        started.set()
        await asyncio.sleep(60)
        return PlainTextResponse("late")

    app = AuditMiddleware(Starlette(routes=[Route("/slow", slow)]), log)
    async with client(app) as c:
        task = asyncio.create_task(c.get("/slow"))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (record,) = records(log)
    assert record.metadata.get("disconnected") is True
    assert record.request is not None and record.request.status == 499


async def test_spoofed_forwarding_from_an_untrusted_peer_is_ignored(log: AuditLog) -> None:
    _, app = starlette_app(audit_log=log, trusted_proxies=["10.0.0.0/8"])
    async with client(app, peer="198.51.100.66") as c:
        await c.get("/hello", headers={"x-forwarded-for": "1.2.3.4"})
    (record,) = records(log)
    assert record.ip_address == "198.51.100.66"


async def test_trusted_proxy_chain_resolves_the_client(log: AuditLog) -> None:
    _, app = starlette_app(audit_log=log, trusted_proxies=["10.0.0.0/8", "fd00::/8"])
    async with client(app, peer="fd00::1") as c:
        await c.get(
            "/hello",
            headers=[
                ("x-forwarded-for", "6.6.6.6, 2001:db8::77"),
                ("x-forwarded-for", "10.0.0.3"),
            ],
        )
    (record,) = records(log)
    assert record.ip_address == "2001:db8::77"
    assert record.request is not None and record.request.peer_ip == "fd00::1"


async def test_forwarded_header_when_configured(log: AuditLog) -> None:
    _, app = starlette_app(audit_log=log, trusted_proxies=["10.0.0.1"], proxy_header="forwarded")
    async with client(app, peer="10.0.0.1") as c:
        await c.get(
            "/hello",
            headers={"forwarded": 'for="[2001:db8::5]"', "x-forwarded-for": "6.6.6.6"},
        )
    (record,) = records(log)
    assert record.ip_address == "2001:db8::5"


async def test_actor_from_starlette_authentication(log: AuditLog) -> None:
    class HeaderAuth(AuthenticationBackend):
        async def authenticate(
            self, conn: HTTPConnection
        ) -> tuple[AuthCredentials, SimpleUser] | None:
            user = conn.headers.get("x-user")
            return (AuthCredentials(["authenticated"]), SimpleUser(user)) if user else None

    app = Starlette(
        routes=[Route("/hello", hello)],
        middleware=[Middleware(AuthenticationMiddleware, backend=HeaderAuth())],
    )
    async with client(AuditMiddleware(app, log)) as c:
        await c.get("/hello", headers={"x-user": "alice"})
        await c.get("/hello")
    authenticated, anonymous = sorted(records(log), key=lambda r: r.actor.name or "")
    assert authenticated.actor.name == "alice"
    assert authenticated.actor.id == "alice"
    assert anonymous.actor.name == "anonymous"


async def test_resolver_hooks_and_a_failing_hook_never_breaks_the_request(log: AuditLog) -> None:
    def actor(scope: dict[str, Any]) -> dict[str, str]:
        return {"type": "agent", "id": dict(scope["headers"]).get(b"x-key", b"").decode()}

    def tenant(scope: dict[str, Any]) -> str:
        raise RuntimeError("tenant lookup down")

    _, app = starlette_app(audit_log=log, actor_resolver=actor, tenant_resolver=tenant)
    async with client(app) as c:
        assert (await c.get("/hello", headers={"x-key": "key_1"})).status_code == 200
    (record,) = records(log)
    assert (record.actor.type, record.actor.id) == ("agent", "key_1")
    assert record.tenant is None


async def test_tenant_from_the_path_parameter(log: AuditLog) -> None:
    _, app = starlette_app(audit_log=log)
    async with client(app) as c:
        await c.get("/t/acme-corp/things")
    (record,) = records(log)
    assert record.tenant == "acme-corp"
    assert record.request is not None and record.request.route == "/t/{tenant}/things"


@pytest.mark.parametrize("tenant", ["t" * 300, "a%00b"], ids=["oversize", "nul"])
async def test_a_tenant_no_record_can_carry_is_dropped_alone(log: AuditLog, tenant: str) -> None:
    _, app = starlette_app(audit_log=log)
    async with client(app) as c:
        assert (await c.post(f"/t/{tenant}/keys/key_1/rotate")).status_code == 200
    (record,) = records(log)
    # Who acted, on what, and how stay; the tenant is dropped and the record says why.
    assert (record.action, record.actor.id, record.target) == (
        "api_key.rotated",
        "u1",
        Target("api_key", "key_1", name="Deploy"),
    )
    assert record.metadata["apiKey"] == "***1337"
    assert record.tenant is None
    assert "tenant" in record.metadata["auditwire"]["dropped"]


async def test_an_authenticated_users_odd_fields_do_not_erase_the_record(log: AuditLog) -> None:
    class OddUser(SimpleUser):
        email = "x" * 400 + "@acme.test"  # longer than any email

        @property
        def identity(self) -> str:
            return "usr\x001"

    class Odd(AuthenticationBackend):
        async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser]:
            return AuthCredentials(["authenticated"]), OddUser("odd")

    app = Starlette(
        routes=[Route("/hello", hello)],
        middleware=[Middleware(AuthenticationMiddleware, backend=Odd())],
    )
    async with client(AuditMiddleware(app, log)) as c:
        assert (await c.get("/hello")).status_code == 200
    (record,) = records(log)
    assert record.actor == Actor(type="user", name="odd")
    assert record.action == "http.request" and "auditwire" not in record.metadata


async def test_captured_headers_that_overflow_the_metadata_are_dropped_alone(
    log: AuditLog,
) -> None:
    _, app = starlette_app(audit_log=log, capture_headers=[f"x-h{n}" for n in range(200)])
    headers = {f"x-h{n}": "v" * 256 for n in range(200)}  # 50 KiB of captured headers
    async with client(app) as c:
        assert (await c.post("/keys/key_1/rotate", headers=headers)).status_code == 200
    (record,) = records(log)
    assert (record.action, record.actor.id) == ("api_key.rotated", "u1")
    assert record.metadata["apiKey"] == "***1337"  # the handler's details stay
    assert "headers" not in record.metadata
    assert "32768" in record.metadata["auditwire"]["dropped"]["headers"]


async def test_which_requests_are_audited(log: AuditLog) -> None:
    _, app = starlette_app(
        audit_log=log, methods=["POST"], actions={"GET /hello": "settings_changed"}
    )
    async with client(app) as c:
        await c.get("/hello")
        await c.post("/keys/k/rotate")
    assert [r.action for r in records(log)] == ["api_key.rotated"]


async def test_health_checks_are_excluded_and_only_named_requests_kept(log: AuditLog) -> None:
    _, app = starlette_app(
        audit_log=log, only_named=True, actions={"GET /hello": "settings_changed"}
    )
    async with client(app) as c:
        await c.get("/health")
        await c.get("/hello")
        await c.get("/secret")
        await c.post("/keys/k/rotate")
    assert sorted(r.action for r in records(log)) == ["api_key.rotated", "settings_changed"]


async def test_handlers_can_skip_and_strict_catalogs_refuse_unknown_actions(tmp_path: Path) -> None:
    strict = AuditLog(f"sqlite:///{tmp_path}/s.db", strict=True)
    seen: list[str] = []

    async def handler(request: Request) -> Response:
        context = auditwire.current()
        assert context is not None
        try:
            context.set_action("no.such.action")
        except InvalidRecordError as exc:
            seen.append(exc.field)
        context.skip()
        return PlainTextResponse("ok")

    app = AuditMiddleware(Starlette(routes=[Route("/x", handler)]), strict)
    async with client(app) as c:
        await c.get("/x")
    assert seen == ["action"]
    assert records(strict) == []
    strict.close()


async def test_sync_endpoints_see_the_context(log: AuditLog) -> None:
    _, app = starlette_app(audit_log=log)
    async with client(app) as c:
        await c.get("/sync")
    assert records(log)[0].actor.id == "sync-user"


async def test_websocket_and_lifespan_pass_through_and_shutdown_flushes(log: AuditLog) -> None:
    _, app = starlette_app(audit_log=log)
    messages: list[str] = []
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: MutableMapping[str, Any]) -> None:
        messages.append(message["type"])

    log.submit(log.build("login", actor={"id": "before-shutdown"}))
    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert messages == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert log.handoff.stats().pending == 0
    assert [r.actor.id for r in records(log)] == ["before-shutdown"]

    socket_messages: list[dict[str, Any]] = [
        {"type": "websocket.connect"},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    socket_in = iter(socket_messages)
    socket_out: list[MutableMapping[str, Any]] = []

    async def socket_receive() -> dict[str, Any]:
        return next(socket_in)

    async def socket_send(message: MutableMapping[str, Any]) -> None:
        socket_out.append(message)

    websocket_scope = {
        "type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "path": "/ws",
        "raw_path": b"/ws", "query_string": b"", "root_path": "", "headers": [],
        "client": ("198.51.100.4", 1), "server": ("t", 80), "subprotocols": [],
    }  # fmt: skip
    await app(websocket_scope, socket_receive, socket_send)
    assert [m["type"] for m in socket_out] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]
    assert len(records(log)) == 1  # websockets are not HTTP requests


async def test_fastapi(log: AuditLog) -> None:
    api = FastAPI()

    @api.post("/t/{tenant}/api/v1/admin/users/{user_id}/block")
    async def block(tenant: str, user_id: int, request: Request) -> dict[str, bool]:
        context = request.scope["auditwire"]
        context.set_actor(type="user", id="admin-1", email="admin@acme.test")
        context.set_action("user_blocked", target={"type": "user", "id": user_id})
        return {"blocked": True}

    async with client(AuditMiddleware(api, log)) as c:
        assert (await c.post("/t/acme/api/v1/admin/users/42/block")).json() == {"blocked": True}
        assert (await c.post("/t/acme/api/v1/admin/users/nope/block")).status_code == 422
    blocked, invalid = sorted(records(log), key=lambda r: r.action)
    assert blocked.action == "http.request" or invalid.action == "http.request"
    named = next(r for r in (blocked, invalid) if r.action == "user_blocked")
    assert named.target is not None and named.target.id == "42"
    assert named.tenant == "acme"
    assert named.category == "user_management"
    assert named.request is not None
    assert named.request.route == "/t/{tenant}/api/v1/admin/users/{user_id}/block"
    unnamed = next(r for r in (blocked, invalid) if r.action == "http.request")
    assert unnamed.outcome == "failure"


async def test_a_thousand_concurrent_requests_keep_their_own_actors(log: AuditLog) -> None:
    _, app = starlette_app(audit_log=log)

    async def one(c: httpx.AsyncClient, n: int) -> None:
        await asyncio.sleep(random.random() / 100)
        response = await c.post(
            f"/keys/k{n}/rotate", headers={"x-user": f"user-{n}", "x-note": str(n)}
        )
        assert response.status_code == 200

    async with client(app) as c:
        await asyncio.gather(*(one(c, n) for n in range(1000)))
    found = records(log)
    assert len(found) == 1000
    for record in found:
        n = record.metadata["note"]
        assert record.actor.id == f"user-{n}"
        assert record.target is not None and record.target.id == f"k{n}"
    assert len({r.request.id for r in found if r.request}) == 1000


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([(b"user-agent", b"\xff\xfe\x00garbage\x7f")], id="non-utf8-ua"),
        pytest.param([(b"user-agent", b"A" * 100_000)], id="huge-ua"),
        pytest.param([(b"x-forwarded-for", b"999.999.1.1, ::zz, \xff")], id="bad-ips"),
        pytest.param([(b"x-forwarded-for", b",".join([b"10.0.0.1"] * 50_000))], id="huge-xff"),
        pytest.param([(b"x-request-id", b"<script>" * 100)], id="bad-request-id"),
        pytest.param([(b"\xff\xfe", b"\x00\x01")], id="garbage-header"),
        pytest.param([(b"cookie", b"auditwire_device=\x00\xff; ;;=")], id="garbage-cookie"),
    ],
)
async def test_malformed_input_never_breaks_the_request(
    log: AuditLog, headers: list[tuple[bytes, bytes]]
) -> None:
    _, app = starlette_app(audit_log=log, trusted_proxies=["*"])
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/hello", "raw_path": b"/hello", "query_string": b"",
        "root_path": "", "headers": headers, "client": ("10.0.0.1", 1), "server": ("t", 80),
    }  # fmt: skip
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 200
    (record,) = records(log)
    assert record.request is not None and record.request.status == 200
    assert record.user_agent is None or len(record.user_agent) <= 512
    assert record.request.id is not None and len(record.request.id) <= 128


async def test_credentials_never_stored_even_when_asked(log: AuditLog) -> None:
    _, app = starlette_app(
        audit_log=log, capture_headers=["authorization", "cookie", "accept-language", "x-api-key"]
    )
    async with client(app) as c:
        await c.get(
            "/hello",
            headers={
                "authorization": "Bearer sk_live_topsecret",
                "cookie": "session=abc",
                "x-api-key": "sk_live_other",
                "accept-language": "de",
            },
        )
    (record,) = records(log)
    assert record.metadata["headers"] == {"accept-language": "de"}
    assert "topsecret" not in str(record.to_api())


async def test_new_device_logins(log: AuditLog) -> None:
    async def login(request: Request) -> Response:
        context = auditwire.current()
        assert context is not None
        context.set_actor(id=request.headers["x-user"], email=f"{request.headers['x-user']}@x.io")
        context.set_action("login")
        return PlainTextResponse("welcome")

    devices = DeviceRegistry()
    app = AuditMiddleware(
        Starlette(routes=[Route("/login", login, methods=["POST"])]), log, devices=devices
    )
    async with client(app) as c:
        first = await c.post("/login", headers={"x-user": "bob", "user-agent": FIREFOX})
        cookie = first.headers["set-cookie"]
        assert cookie.startswith("auditwire_device=") and "HttpOnly" in cookie
        device = cookie.split(";")[0].split("=")[1]
        c.cookies.clear()
        again = await c.post(
            "/login", headers={"x-user": "bob", "cookie": f"auditwire_device={device}"}
        )
        assert "set-cookie" not in again.headers
        c.cookies.clear()
        await c.post("/login", headers={"x-user": "bob", "user-agent": FIREFOX})  # a new device
    found = records(log)
    new_device = [r for r in found if r.action == "user.new_device_logged_in"]
    assert [r.action for r in found].count("login") == 3
    assert len(new_device) == 1
    (record,) = new_device
    assert record.message == "bob@x.io successfully logged in using a new device"
    assert record.metadata["browser"] == "Firefox"
    assert record.metadata["ipAddress"] == "203.0.113.5"
    assert record.device is not None and record.device.id not in (None, device)


async def test_trace_and_span_ids_of_the_active_span(log: AuditLog) -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.trace import TracerProvider

    _, audited = starlette_app(audit_log=log, trace_context=True)
    app = OpenTelemetryMiddleware(audited, tracer_provider=TracerProvider())
    async with client(app) as c:
        await c.get("/hello")
    (record,) = records(log)
    assert record.trace is not None
    assert len(record.trace.trace_id) == 32 and record.trace.span_id is not None


async def test_options_are_typed_keywords_that_starlette_and_mypy_check() -> None:
    log = AuditLog("sqlite:///:memory:")
    app = Starlette(routes=[Route("/hello", hello)])
    app.add_middleware(AuditMiddleware, audit_log=log, trusted_proxies=["203.0.113.0/24"])
    async with client(app) as c:
        assert (await c.get("/hello")).status_code == 200
    assert [r.action for r in records(log)] == ["http.request"]
    # mypy refuses both misspellings (the ignores would be reported unused otherwise)...
    Middleware(AuditMiddleware, audit_log=log, only_namd=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"unknown capture option\(s\): only_namd"):
        AuditMiddleware(app, log, only_namd=True)  # type: ignore[call-arg]
    # ...and a mistyped value.
    with pytest.raises(ValueError, match="proxy_header must be"):
        AuditMiddleware(app, log, proxy_header="x-real-ip")  # type: ignore[arg-type]
