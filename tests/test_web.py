"""The audit-log API routes over a real Starlette app with Starlette authentication."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.routing import Mount

from auditwire import Actor, AuditLog, AuditQuery, AuditRecord, Page, SQLiteStore, Target
from auditwire.web import audit_log_routes
from tests.records import VALIDATOR

pytestmark = pytest.mark.anyio
PREFIX = "/t/{tenant}/api/v1/admin"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RoleHeader(AuthenticationBackend):
    """``x-role: admin`` / ``security_logs`` / ``finance``; no header, no user."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        role = conn.headers.get("x-role")
        return (AuthCredentials([role]), SimpleUser(f"{role}-user")) if role else None


@pytest.fixture
async def client(log: AuditLog) -> AsyncIterator[httpx.AsyncClient]:
    for n in range(30):
        log.record(
            ["login", "login_failed", "user.invited", "api_key.rotated"][n % 4],
            actor=Actor(type="user", id=f"u{n % 3}", email=f"u{n % 3}@acme.test"),
            target=Target("user", f"t{n}") if n % 2 else None,
            outcome="failure" if n % 4 == 1 else "success",
            ip_address="203.0.113.9",
            user_agent='=HYPERLINK("http://evil")' if n == 0 else "Mozilla/5.0",
            metadata={"n": n},
            tenant="acme" if n < 20 else "globex",
        )
    app = Starlette(
        routes=[Mount(PREFIX, routes=audit_log_routes(log))],
        middleware=[Middleware(AuthenticationMiddleware, backend=RoleHeader())],
    )
    transport = httpx.ASGITransport(app=app, client=("198.51.100.1", 1))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers={"x-role": "admin"}
    ) as c:
        yield c


def acme(path: str) -> str:
    return "/t/acme/api/v1/admin" + path


async def test_list_with_both_vocabularies_and_pagination(client: httpx.AsyncClient) -> None:
    response = await client.get(acme("/audit-logs"), params={"per_page": 7})
    body = response.json()
    assert response.status_code == 200
    assert body["meta"]["total"] == 20
    assert body["meta"]["totalPages"] == 3
    assert len(body["data"]) == 7
    for item in body["data"]:
        VALIDATOR.validate(item)
        assert item["tenant"] == "acme"
    failed = (await client.get(acme("/audit-logs?action=login_failed&outcome=failure"))).json()
    assert {i["action"] for i in failed["data"]} == {"login_failed"}
    billing = await client.get(acme("/audit-logs?log_types=api_key&users[]=u1@acme.test"))
    assert {(i["category"], i["actor"]["email"]) for i in billing.json()["data"]} == {
        ("api_key", "u1@acme.test")
    }
    last = await client.get(acme("/audit-logs"), params={"per_page": 7, "page": 3})
    assert len(last.json()["data"]) == 6
    assert last.json()["meta"]["nextCursor"] is None


async def test_retrieve_and_404_across_tenants(client: httpx.AsyncClient) -> None:
    listing = (await client.get(acme("/audit-logs?per_page=1"))).json()
    log_id = listing["data"][0]["id"]
    found = await client.get(acme(f"/audit-logs/{log_id}"))
    assert found.json()["data"]["id"] == log_id
    other = await client.get(f"/t/globex/api/v1/admin/audit-logs/{log_id}")
    assert other.status_code == 404
    assert (await client.get(acme("/audit-logs/log_01ARZ3NDEKTSV4RRFFQ69G5FAV"))).status_code == 404


async def test_tenants_never_see_each_other(client: httpx.AsyncClient) -> None:
    globex = (await client.get("/t/globex/api/v1/admin/audit-logs?per_page=100")).json()
    assert globex["meta"]["total"] == 10
    assert {i["tenant"] for i in globex["data"]} == {"globex"}


@pytest.mark.parametrize(
    ("role", "status"),
    [("admin", 200), ("security_logs", 200), ("finance", 403), (None, 403)],
)
async def test_permission(client: httpx.AsyncClient, role: str | None, status: int) -> None:
    headers = {"x-role": role} if role else {"x-role": ""}
    assert (await client.get(acme("/audit-logs"), headers=headers)).status_code == status


async def test_bad_parameters_are_400_naming_them(client: httpx.AsyncClient) -> None:
    response = await client.get(acme("/audit-logs?endDate=tomorrow-ish"))
    assert response.status_code == 400
    assert response.json()["error"]["parameter"] == "endDate"
    bad_export = await client.post(acme("/audit-logs/export"), json={"format": "xlsx"})
    assert bad_export.status_code == 400
    assert bad_export.json()["error"]["parameter"] == "format"


@pytest.mark.parametrize("export_format", ["csv", "json", "ndjson"])
async def test_export_each_format(client: httpx.AsyncClient, export_format: str) -> None:
    response = await client.post(
        acme("/audit-logs/export"),
        json={"format": export_format, "filters": {"outcome": "success"}},
    )
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    text = response.text
    if export_format == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert {r["outcome"] for r in rows} == {"success"}
        assert len(rows) == 15
        injected = [r for r in rows if "HYPERLINK" in r["userAgent"]]
        assert injected[0]["userAgent"].startswith("'=")  # not a live formula
    elif export_format == "json":
        items = json.loads(text)
        assert len(items) == 15
    else:
        items = [json.loads(line) for line in text.splitlines()]
        assert len(items) == 15


async def test_reading_and_exporting_are_audited(client: httpx.AsyncClient, log: AuditLog) -> None:
    await client.get(acme("/audit-logs?action=login"))
    await client.post(acme("/audit-logs/export"), json={"format": "ndjson"})
    assert log.flush(10)
    assert isinstance(log.store, SQLiteStore)
    reads = log.store.search(
        AuditQuery(actions=("audit_log.read", "export.created"), tenant="acme")
    )
    assert sorted(r.action for r in reads) == ["audit_log.read", "export.created"]
    assert {r.actor.name for r in reads} == {"admin-user"}


async def test_security_logs_view_in_the_billing_products_shape(client: httpx.AsyncClient) -> None:
    body = (
        await client.get(acme("/security_logs?per_page=5&page=2&log_events[]=user.invited"))
    ).json()
    assert body["meta"] == {
        "current_page": 2,
        "next_page": None,
        "prev_page": 1,
        "total_pages": 1 if body["meta"]["total_count"] <= 5 else body["meta"]["total_pages"],
        "total_count": body["meta"]["total_count"],
    }
    first = (await client.get(acme("/security_logs?per_page=5"))).json()["security_logs"][0]
    assert set(first) >= {"log_id", "user_email", "log_type", "log_event", "logged_at", "resources"}


class SlowStore(SQLiteStore):
    """A store whose reads wait until the test lets them go (a slow cluster)."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.release = threading.Event()

    def page(self, query: AuditQuery, page: int = 1) -> Page:
        self.release.wait(5)
        return super().page(query, page)

    def get(self, record_id: str, *, tenant: str | None = None) -> AuditRecord:
        self.release.wait(5)
        return super().get(record_id, tenant=tenant)


async def test_store_reads_do_not_block_the_event_loop() -> None:
    store = SlowStore()
    log = AuditLog(store)
    app = Starlette(
        routes=[Mount(PREFIX, routes=audit_log_routes(log))],
        middleware=[Middleware(AuthenticationMiddleware, backend=RoleHeader())],
    )
    transport = httpx.ASGITransport(app=app, client=("198.51.100.1", 1))
    finished: list[str] = []

    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers={"x-role": "admin"}
    ) as c:

        async def fetch(name: str, path: str) -> int:
            status = (await c.get(acme(path))).status_code
            finished.append(name)
            return status

        async def meanwhile() -> int:
            await asyncio.sleep(0.2)  # the slow reads are in flight
            status = await fetch("openapi", "/openapi.json")
            store.release.set()
            return status

        statuses = await asyncio.gather(
            fetch("list", "/audit-logs"),
            fetch("security_logs", "/security_logs"),
            fetch("one", "/audit-logs/log_01HM6Z6AJ0M8V3T9X1K2Q4R5S6"),
            meanwhile(),
        )
    assert list(statuses) == [200, 200, 404, 200]
    assert finished[0] == "openapi"  # served while three reads waited on the store
    log.close()
