"""FastAPI's own authentication dependency names the audit actor — in-process and under
uvicorn — with the one documented line, ``Depends(audited(get_current_user))``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from auditwire import Actor, AuditLog, AuditQuery, SQLiteStore
from auditwire.asgi import AuditMiddleware
from auditwire.errors import InvalidRecordError
from auditwire.integrations.fastapi import actor_of, audited
from tests.records import written as records
from tests.support.fastapi_app import User, create_app, get_current_user
from tests.support.servers import free_port, serving

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_dependencys_user_is_the_actor(log: AuditLog) -> None:
    transport = httpx.ASGITransport(app=create_app(log))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        assert (await client.post("/api-keys/k1/rotate", headers={"x-api-key": "key-ada"})).json()
        assert (await client.post("/api-keys/k2/rotate")).status_code == 401
        await client.get("/hello")
    by_path = {r.request.path: r for r in records(log) if r.request}
    rotated = by_path["/api-keys/k1/rotate"]
    assert rotated.action == "api_key.rotated"
    assert rotated.actor == Actor(type="user", id="ada", email="ada@acme.test")
    assert rotated.request is not None and rotated.request.route == "/api-keys/{key}/rotate"
    assert by_path["/api-keys/k2/rotate"].actor.name == "anonymous"  # refused: nobody named
    assert by_path["/hello"].actor.name == "anonymous"


async def test_on_a_router_for_every_route(log: AuditLog) -> None:
    app = FastAPI(dependencies=[Depends(audited(get_current_user))])

    @app.get("/me")
    def me() -> str:
        return "me"

    app.add_middleware(AuditMiddleware, audit_log=log)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://app"
    ) as client:
        await client.get("/me", headers={"x-api-key": "key-grace"})
    (record,) = records(log)
    assert record.actor.id == "grace"


class Account:
    def auditwire_actor(self) -> dict[str, Any]:
        return {"type": "agent", "id": "key_ci"}


@pytest.mark.parametrize(
    ("user", "actor"),
    [
        (User("u1", "u1@acme.test"), Actor(type="user", id="u1", email="u1@acme.test")),
        ({"type": "agent", "id": "key_1"}, Actor(type="agent", id="key_1")),
        (Account(), Actor(type="agent", id="key_ci")),
        (None, None),
    ],
    ids=["object", "mapping", "protocol", "nobody"],
)
def test_what_names_an_actor(user: object, actor: Actor | None) -> None:
    assert actor_of(user) == actor


def test_a_dependency_s_text_answer_is_not_taken_for_the_actor() -> None:
    with pytest.raises(InvalidRecordError, match="may be a credential"):
        actor_of("sk_live_0123456789")


def test_under_uvicorn(tmp_path: Path) -> None:
    database = tmp_path / "audit.db"
    port = free_port()
    with serving(
        ["uvicorn", "--factory", "tests.support.fastapi_app:create_app",
         "--port", str(port), "--no-proxy-headers"],
        port,
        tmp_path / "uvicorn.log",
        {"AUDITWIRE_STORE": f"sqlite:///{database}"},
    ) as client:  # fmt: skip
        rotated = client.post("/api-keys/k9/rotate", headers={"x-api-key": "key-linus"})
        assert rotated.json() == {"rotated": "k9", "by": "linus"}
    found = SQLiteStore(database, readonly=True).search(AuditQuery(actions=("api_key.rotated",)))
    assert [(r.actor.id, r.request.route if r.request else None) for r in found] == [
        ("linus", "/api-keys/{key}/rotate")
    ]


async def test_the_reader_of_the_audit_log_api_is_the_apps_own_user(log: AuditLog) -> None:
    """The API routes are Starlette's, mounted in the FastAPI app: no dependency runs for them.
    ``caller_of`` names the reader from what the request carries, as the app's own
    authentication would; without it the read is anonymous."""
    from starlette.requests import Request
    from starlette.routing import Mount

    from auditwire.web import audit_log_routes

    def caller(request: Request) -> User | None:
        key = request.headers.get("x-api-key", "")
        if key == "key-broken":
            raise RuntimeError("the token store is down")
        return get_current_user(key) if key.startswith("key-") else None

    app = FastAPI()
    app.router.routes.append(
        Mount(
            "/admin",
            routes=audit_log_routes(
                log,
                permission=lambda request: "x-api-key" in request.headers,
                tenant_of=lambda request: None,
                caller_of=caller,
                mounted_at="/admin",
            ),
        )
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://app"
    ) as client:
        answer = await client.get("/admin/audit-logs", headers={"x-api-key": "key-grace"})
        assert answer.status_code == 200
        # A hook that fails never fails the read: it is recorded, as anonymous.
        answer = await client.get("/admin/audit-logs", headers={"x-api-key": "key-broken"})
        assert answer.status_code == 200
    reads = records(log)
    assert [r.action for r in reads] == ["audit_log.read"] * 2
    assert {r.actor for r in reads} == {
        Actor(type="user", id="grace", email="grace@acme.test"),
        Actor(type="user", name="anonymous"),
    }
