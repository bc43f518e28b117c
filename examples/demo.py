"""``make demo``: a small audited app, a morning driven through it over HTTP, and the viewer.

A Starlette app with auditwire's middleware writes to the embedded SQLite store and serves the
viewer at ``/admin/viewer``. uvicorn serves it; a client then lives a morning through it over
real HTTP: sign-ups, logins, failed logins from several addresses (one through the trusted load
balancer, one with a spoofed ``X-Forwarded-For`` straight from an untrusted peer), an API-key
rotation, a role change, an access denied. Then the viewer's address is printed on a line of
its own, and the app runs until Ctrl-C.

    python examples/demo.py [--db PATH] [--port N] [--no-serve]

``--no-serve`` stops once the morning is recorded (the test suite runs it so). The client
comes from several loopback addresses (127.0.0.0/8 is all this machine's), so no network is
needed.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    SimpleUser,
    requires,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

import auditwire
from auditwire import AuditLog, AuditQuery
from auditwire.asgi import AuditMiddleware
from auditwire.web import audit_log_routes

#: The load balancer in front of the app: the one peer whose X-Forwarded-For is believed.
LOAD_BALANCER = "127.0.0.10"
#: A client that talks to the app directly and claims another address.
SPOOFER = "127.0.0.66"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 Version/17.2 Safari"


class User(SimpleUser):
    def __init__(self, email: str, user_id: str) -> None:
        super().__init__(email)
        self.email, self.id = email, user_id


class Tokens(AuthenticationBackend):
    """``Authorization: Bearer <token>``, tokens issued at login."""

    def __init__(self) -> None:
        self.sessions: dict[str, User] = {}

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, User] | None:
        token = conn.headers.get("authorization", "").removeprefix("Bearer ")
        user = self.sessions.get(token)
        if user is None:
            return None
        scopes = ["authenticated", "admin"] if user.email.startswith("alice") else ["authenticated"]
        return AuthCredentials(scopes), user


def create_app(log: AuditLog) -> Any:
    tokens = Tokens()
    accounts: dict[str, tuple[str, str]] = {}  # email -> (user id, password)

    async def sign_up(request: Request) -> Response:
        form = await request.json()
        user_id = f"usr_{len(accounts) + 1}"
        accounts[form["email"]] = (user_id, form["password"])
        context = auditwire.current()
        assert context is not None
        context.set_actor(id=user_id, email=form["email"])
        context.set_action("user.signed_up", target={"type": "user", "id": user_id})
        return JSONResponse({"id": user_id}, 201)

    async def login(request: Request) -> Response:
        form = await request.json()
        context = auditwire.current()
        assert context is not None
        account = accounts.get(form["email"])
        if account is None or account[1] != form["password"]:
            context.set_actor(email=form["email"])
            context.set_action("login_failed", outcome="failure", metadata={"reason": "password"})
            return JSONResponse({"error": "wrong email or password"}, 401)
        token = secrets.token_urlsafe(16)
        tokens.sessions[token] = User(form["email"], account[0])
        context.set_actor(id=account[0], email=form["email"])
        context.set_action("login")
        return JSONResponse({"token": token})

    @requires("authenticated", status_code=401)
    async def rotate_key(request: Request) -> Response:
        key = request.path_params["key"]
        context = auditwire.current()
        assert context is not None
        context.set_action("api_key.rotated", target={"type": "api_key", "id": key})
        return JSONResponse({"rotated": key})

    @requires("admin", status_code=403)
    async def change_role(request: Request) -> Response:
        user_id = request.path_params["user_id"]
        role = (await request.json())["role"]
        context = auditwire.current()
        assert context is not None
        context.set_action(
            "user.role_edited",
            target={"type": "user", "id": user_id},
            metadata={"role": {"name": role}},
        )
        return JSONResponse({"role": role})

    @requires("admin", status_code=403)
    async def billing(request: Request) -> Response:
        return JSONResponse({"plan": "business"})

    viewer = audit_log_routes(  # this machine's operator reads every record
        log, permission=lambda request: True, tenant_of=lambda request: None, mounted_at="/admin"
    )
    app = Starlette(
        routes=[
            Route("/signup", sign_up, methods=["POST"]),
            Route("/login", login, methods=["POST"]),
            Route("/api-keys/{key}/rotate", rotate_key, methods=["POST"]),
            Route("/users/{user_id}/role", change_role, methods=["PUT"]),
            Route("/settings/billing", billing),
            Mount("/admin", routes=viewer),
        ],
        middleware=[Middleware(AuthenticationMiddleware, backend=tokens)],
    )
    return AuditMiddleware(app, log, trusted_proxies=[LOAD_BALANCER])


def live_the_morning(base: str) -> None:
    """The morning, over HTTP, from the addresses the people involved come from."""

    def client(address: str, **headers: str) -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=address)
        return httpx.Client(base_url=base, transport=transport, headers=headers)

    with client("127.0.0.2", **{"user-agent": BROWSER}) as alice:
        alice.post("/signup", json={"email": "alice@acme.test", "password": "correct horse"})
        token = alice.post(
            "/login", json={"email": "alice@acme.test", "password": "correct horse"}
        ).json()["token"]
        alice.headers["authorization"] = f"Bearer {token}"
        alice.post("/api-keys/key_ci/rotate")
    with client(LOAD_BALANCER, **{"x-forwarded-for": "198.51.100.7", "user-agent": BROWSER}) as bob:
        bob.post("/signup", json={"email": "bob@acme.test", "password": "battery staple"})
        for _ in range(2):
            bob.post("/login", json={"email": "bob@acme.test", "password": "hunter2"})
        token = bob.post(
            "/login", json={"email": "bob@acme.test", "password": "battery staple"}
        ).json()["token"]
        bob.headers["authorization"] = f"Bearer {token}"
        bob.get("/settings/billing")  # not an admin: access denied
    with client("127.0.0.3", **{"user-agent": "python-requests/2.32"}) as attacker:
        for password in ("123456", "password", "acme2024"):
            attacker.post("/login", json={"email": "alice@acme.test", "password": password})
    # Straight to the app, claiming to be on the office network: the claim is not believed.
    with client(SPOOFER, **{"x-forwarded-for": "10.0.0.1", "user-agent": "curl/8.5"}) as spoof:
        spoof.post("/login", json={"email": "bob@acme.test", "password": "letmein"})
    with client("127.0.0.2", **{"user-agent": BROWSER}) as alice:
        token = alice.post(
            "/login", json={"email": "alice@acme.test", "password": "correct horse"}
        ).json()["token"]
        alice.headers["authorization"] = f"Bearer {token}"
        alice.put("/users/usr_2/role", json={"role": "Finance"})


def main(argv: list[str] | None = None) -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    options.add_argument("--db", type=Path, help="SQLite file (default: a new temporary one)")
    options.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    options.add_argument("--no-serve", action="store_true", help="stop once recorded")
    args = options.parse_args(argv)
    path = args.db or Path(tempfile.mkdtemp(prefix="auditwire-demo-")) / "audit.db"
    with AuditLog(f"sqlite:///{path}") as log:
        server = uvicorn.Server(
            uvicorn.Config(create_app(log), host="127.0.0.1", port=args.port, log_level="warning")
        )

        def drive() -> None:
            while not server.started:
                threading.Event().wait(0.05)
            port = server.servers[0].sockets[0].getsockname()[1]
            live_the_morning(f"http://127.0.0.1:{port}")
            log.flush()
            failed = log.search(AuditQuery(actions=("login_failed",), limit=100))
            print(f"Recorded {len(log.search(limit=1000))} audit events in {path}")
            print(f"  {len(failed)} failed logins, from " + ", ".join(
                sorted({r.ip_address or "?" for r in failed})
            ))  # fmt: skip
            if args.no_serve:
                server.should_exit = True
                return
            print(f"Viewer: http://127.0.0.1:{port}/admin/viewer", flush=True)
            print("Ctrl-C stops it.", flush=True)

        threading.Thread(target=drive, daemon=True).start()
        try:
            server.run()
        except KeyboardInterrupt:  # uvicorn shut down cleanly, then re-raised Ctrl-C
            print("Stopped.")


if __name__ == "__main__":
    main()
