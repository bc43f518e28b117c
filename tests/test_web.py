"""The audit-log API routes over a real Starlette app with Starlette authentication."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.routing import Mount

from auditwire import Actor, AuditLog, AuditQuery, AuditRecord, Page, SQLiteStore, Target
from auditwire.listing.charts import CHART_PARAMETERS
from auditwire.listing.params import PAGING, VOCABULARY
from auditwire.stores.elasticsearch import ElasticsearchStore
from auditwire.web import audit_log_routes
from tests.records import VALIDATOR, full_record

pytestmark = pytest.mark.anyio
PREFIX = "/t/{tenant}/api/v1/admin"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RoleHeader(AuthenticationBackend):
    """``x-role: admin`` / ``security_logs`` / ``finance`` / ``auditwire:all-tenants``, and the
    caller's tenant claim in ``x-tenant`` (a ``tenant:<id>`` scope); no role, no user."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        role = conn.headers.get("x-role")
        if not role:
            return None
        scopes = role.split()
        scopes += [f"tenant:{t}" for t in conn.headers.get("x-tenant", "").split()]
        return AuthCredentials(scopes), SimpleUser(f"{scopes[0]}-user")


def api(log: AuditLog, **options: Any) -> Starlette:
    return Starlette(
        routes=[Mount(PREFIX, routes=audit_log_routes(log, **options))],
        middleware=[Middleware(AuthenticationMiddleware, backend=RoleHeader())],
    )


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
    transport = httpx.ASGITransport(
        app=api(log, all_tenants_scope="auditwire:all-tenants"), client=("198.51.100.1", 1)
    )
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers={"x-role": "admin", "x-tenant": "acme"}
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
    other = await client.get(
        f"/t/globex/api/v1/admin/audit-logs/{log_id}", headers={"x-tenant": "globex"}
    )
    assert other.status_code == 404
    assert (await client.get(acme("/audit-logs/log_01ARZ3NDEKTSV4RRFFQ69G5FAV"))).status_code == 404


def globex(path: str) -> str:
    return "/t/globex/api/v1/admin" + path


async def test_tenants_never_see_each_other(client: httpx.AsyncClient) -> None:
    own = await client.get(globex("/audit-logs?per_page=100"), headers={"x-tenant": "globex"})
    assert own.json()["meta"]["total"] == 10
    assert {i["tenant"] for i in own.json()["data"]} == {"globex"}
    log_id = own.json()["data"][0]["id"]
    # An admin of acme edits the tenant in the URL: every route refuses, naming why.
    for response in (
        await client.get(globex("/audit-logs")),
        await client.get(globex(f"/audit-logs/{log_id}")),
        await client.post(globex("/audit-logs/export"), json={"format": "ndjson"}),
        await client.get(globex("/security_logs")),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden_tenant"
        assert "own tenant" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "tenant_claim",
    [pytest.param("", id="no-claim"), pytest.param("acme globex", id="two-claims")],
)
async def test_a_caller_whose_tenant_cannot_be_told_reads_no_tenant(
    client: httpx.AsyncClient, tenant_claim: str
) -> None:
    response = await client.get(acme("/audit-logs"), headers={"x-tenant": tenant_claim})
    assert response.status_code == 403
    assert "cannot be told" in response.json()["error"]["message"]


async def test_reading_every_tenant_is_an_explicit_role(client: httpx.AsyncClient) -> None:
    operator = {"x-role": "admin auditwire:all-tenants", "x-tenant": ""}
    body = (await client.get(globex("/audit-logs?per_page=100"), headers=operator)).json()
    assert {i["tenant"] for i in body["data"]} == {"globex"}  # the URL's tenant still bounds it
    assert (await client.get(acme("/audit-logs"), headers=operator)).json()["meta"]["total"] == 20


async def test_without_the_operator_option_nobody_reads_every_tenant(log: AuditLog) -> None:
    transport = httpx.ASGITransport(app=api(log), client=("198.51.100.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get(
            globex("/audit-logs"), headers={"x-role": "admin auditwire:all-tenants"}
        )
    assert response.status_code == 403


class OrgUser(SimpleUser):
    def __init__(self, username: str, tenant: str) -> None:
        super().__init__(username)
        self.tenant = tenant


class OrgHeader(AuthenticationBackend):
    """An authenticated user that carries its tenant (``x-org``), as many apps' users do."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser]:
        return AuthCredentials(["admin"]), OrgUser("ada", conn.headers.get("x-org", ""))


async def test_the_users_own_tenant_attribute_binds_it(log: AuditLog) -> None:
    log.record("login", actor={"id": "u1"}, tenant="globex")
    app = Starlette(
        routes=[Mount(PREFIX, routes=audit_log_routes(log))],
        middleware=[Middleware(AuthenticationMiddleware, backend=OrgHeader())],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get(globex("/audit-logs"), headers={"x-org": "globex"})).status_code == 200
        assert (await c.get(globex("/audit-logs"), headers={"x-org": "acme"})).status_code == 403
        assert (await c.get(globex("/audit-logs"))).status_code == 403  # an empty tenant


async def test_the_tenant_hook_replaces_the_default(log: AuditLog) -> None:
    log.record("login", actor={"id": "u1"}, tenant="globex")

    def from_header(request: Request) -> str | None:
        return request.headers.get("x-org")

    transport = httpx.ASGITransport(app=api(log, tenant_of=from_header))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers={"x-role": "admin"}
    ) as c:
        assert (await c.get(globex("/audit-logs"), headers={"x-org": "globex"})).status_code == 200
        assert (await c.get(globex("/audit-logs"), headers={"x-org": "acme"})).status_code == 403


@pytest.mark.parametrize("failing", ["permission", "tenant_of"])
async def test_a_hook_that_raises_refuses_the_read(
    log: AuditLog, failing: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An application hook that fails (its session store is down, a user without the
    attribute it reads) refuses: a 403 and the exception in the log, never a 500, and never
    a read nobody vouched for."""

    def broken(request: Request) -> Any:
        raise KeyError("the session store is down")

    app = api(log, **{failing: broken})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"x-role": "admin", "x-tenant": "acme"},
    ) as c:
        response = await c.get(acme("/audit-logs"))
    assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
    assert "the session store is down" in caplog.text


@pytest.mark.parametrize("tenant", ["a%00b", "t" * 300])
async def test_a_tenant_no_record_could_carry_is_a_400(
    client: httpx.AsyncClient, tenant: str
) -> None:
    response = await client.get(
        f"/t/{tenant}/api/v1/admin/audit-logs", headers={"x-tenant": tenant}
    )
    assert response.status_code == 400
    assert response.json()["error"]["parameter"] == "tenant"


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


async def test_a_read_in_an_audited_app_is_one_record_with_the_requests_details(
    log: AuditLog,
) -> None:
    """Under the audit middleware a read is recorded once, as ``audit_log.read`` with the
    request's client IP (through the trusted proxy), user agent and request id — not once more
    as a generic ``http.request`` beside it."""
    from auditwire.asgi import AuditMiddleware

    log.record("login", tenant="acme")
    app = AuditMiddleware(api(log), log, trusted_proxies=["198.51.100.0/24"])
    transport = httpx.ASGITransport(app=app, client=("198.51.100.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get(
            acme("/audit-logs"),
            headers={
                "x-role": "admin",
                "x-tenant": "acme",
                "user-agent": "curl/8.5",
                "x-forwarded-for": "203.0.113.7",
                "x-request-id": "req-1",
            },
        )
    assert answer.status_code == 200
    assert log.flush(10)
    assert isinstance(log.store, SQLiteStore)
    later = log.store.search(AuditQuery(limit=10))[:-1]  # all but the seeded login
    assert [r.action for r in later] == ["audit_log.read"]
    (read,) = later
    assert (read.actor.name, read.ip_address, read.user_agent) == (
        "admin-user",
        "203.0.113.7",
        "curl/8.5",
    )
    assert read.request is not None and read.request.id == "req-1"


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
    transport = httpx.ASGITransport(app=api(log), client=("198.51.100.1", 1))
    finished: list[str] = []

    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers={"x-role": "admin", "x-tenant": "acme"}
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


async def test_a_log_bound_to_one_tenant_serves_only_that_tenants_url(tmp_path: Path) -> None:
    bound = AuditLog(f"sqlite:///{tmp_path / 'acme.db'}", tenant="acme")
    bound.record("login", actor={"id": "u1"})
    transport = httpx.ASGITransport(app=api(bound, all_tenants_scope="auditwire:all-tenants"))
    operator = {"x-role": "admin auditwire:all-tenants"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get(acme("/audit-logs"), headers=operator)).json()["meta"]["total"] == 1
        refused = await c.get(globex("/audit-logs"), headers=operator)
    assert refused.status_code == 403
    assert "another tenant" in refused.json()["error"]["message"]
    bound.close()


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("to=9999-12-31", "to"),
        ("startDate=0001-01-01T00:00:00%2B01:00", "startDate"),
        ("action=", "action"),
        ("users=,,,", "users"),
        ("from=2024-01-02&to=2024-01-01", "from"),
    ],
)
async def test_extreme_or_empty_filters_are_400s_naming_them(
    client: httpx.AsyncClient, query: str, parameter: str
) -> None:
    for path in ("/audit-logs", "/security_logs"):
        response = await client.get(acme(f"{path}?{query}"))
        assert response.status_code == 400, response.text
        assert response.json()["error"]["parameter"] == parameter


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ('{"format": ["csv"]}', "format"),
        ('{"format": "csv", "filters": {"action": null}}', "filters.action"),
        ('{"filters": {"outcome": 1.5}}', "filters.outcome"),
        ('{"filters": {"users": ["a", 1]}}', "filters.users"),
        ('{"filters": {"per_page": NaN}}', "body"),
        ('{"filters": {"per_page": Infinity}}', "body"),
        ('{"filters": {"to": "9999-12-31"}}', "to"),
        ('{"format": "csv", "filtres": {}}', "filtres"),
        ('{"": "csv"}', "(unnamed)"),
        ("[" * 100_000 + "]" * 100_000, "body"),
        ('{"filters": "' + "x" * 70_000 + '"}', "body"),
    ],
    ids=[
        "format-list",
        "null-filter",
        "float-filter",
        "mixed-list",
        "nan",
        "infinity",
        "last-day",
        "unknown-field",
        "unnamed-field-found-by-fuzzing",
        "deep-nesting",
        "oversize",
    ],
)
async def test_export_bodies_of_the_wrong_shape_are_400s_naming_the_part(
    client: httpx.AsyncClient, body: str, parameter: str
) -> None:
    response = await client.post(
        acme("/audit-logs/export"), content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["parameter"] == parameter


async def test_a_read_with_huge_filters_is_served_and_audited_with_a_summary(
    client: httpx.AsyncClient, log: AuditLog
) -> None:
    # 100 values of 320 characters: a valid filter, more than a record's 32 KiB of metadata.
    many: list[tuple[str, str | int | float | bool | None]] = [
        ("targetId", f"{n:03d}{'t' * 317}") for n in range(100)
    ]
    for path in ("/audit-logs", "/security_logs"):
        served = await client.get(acme(path), params=many)
        assert served.status_code == 200, served.text
    assert log.flush(10)
    assert isinstance(log.store, SQLiteStore)
    reads = log.store.search(AuditQuery(actions=("audit_log.read",), tenant="acme"))
    summaries = [r.metadata["filters"] for r in reads if "targetId" in r.metadata["filters"]]
    assert len(summaries) == 2
    for summary in summaries:
        assert len(summary["targetId"]) == 20 and summary["…truncated"] is True
        assert all(len(value) == 200 for value in summary["targetId"])


async def test_counts_for_charts(client: httpx.AsyncClient, log: AuditLog) -> None:
    """The aggregation route: the tenant's timeline by outcome and top values, with the list's
    filters, equal to the Python API's; its parameters refused by name."""
    answer = await client.get(
        acme("/audit-logs/aggregations"),
        params={"top": "actor_id,source_ip", "interval": "hour", "log_types": "authentication"},
    )
    assert answer.status_code == 200, answer.text
    data, meta = answer.json()["data"], answer.json()["meta"]
    query = AuditQuery(tenant="acme", categories=("authentication",))
    assert isinstance(log.store, SQLiteStore)
    assert meta["total"] == log.store.count(query) == 10
    assert data["timeline"]["buckets"] == [b.to_api() for b in log.timeline("hour", query)]
    assert sum(b["counts"]["failure"] for b in data["timeline"]["buckets"]) == 5
    assert data["top"]["actor_id"] == [v.to_api() for v in log.top("actor_id", 10, query)]
    assert data["top"]["source_ip"] == [{"value": "203.0.113.9", "count": 10}]
    refusals: list[tuple[dict[str, str | list[str]], str]] = [
        ({"interval": "week"}, "interval"),
        ({"top": "password"}, "top"),
        ({"size": "0"}, "size"),
        ({"size": "\u00b2"}, "size"),
        ({"interval": ["hour", "day"]}, "interval"),
        ({"bogus": "1"}, "bogus"),
    ]
    for params, parameter in refusals:
        refused = await client.get(acme("/audit-logs/aggregations"), params=params)
        assert refused.status_code == 400, (params, refused.text)
        assert refused.json()["error"]["parameter"] == parameter


async def test_an_id_no_record_could_have_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get(acme("/audit-logs/" + "x" * 40_000))
    assert response.status_code == 404
    assert len(response.json()["error"]["message"]) < 200


_hostile_text = st.text(max_size=40) | st.sampled_from(
    ["", ",", ",,,", "a\x00b", "x" * 400, "\uff1d1", "0001-01-01", "9999-12-31", "20260304"]
)
_dates = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.timezones()
).map(lambda d: d.isoformat())
_cursors = st.tuples(
    _dates | _hostile_text, _hostile_text | st.just("log_01HM6Z6AJ0M8V3T9X1K2Q4R5S6")
).map(lambda pair: base64.urlsafe_b64encode(f"{pair[0]}|{pair[1]}".encode()).decode().rstrip("="))
_keys = st.sampled_from([*VOCABULARY, *PAGING, *CHART_PARAMETERS, "actions[]", "nope"])
_values = _hostile_text | _dates | _cursors | st.integers(-(2**70), 2**70).map(str)
_date_values = _dates | st.sampled_from(
    ["0001-01-01", "9999-12-31", "20260304", "0001-01-01T00:00:00+01:00", "9999-12-31T23:00-05:00"]
)
_params = st.lists(
    st.tuples(st.sampled_from(["from", "to", "startDate", "endDate"]), _date_values)
    | st.tuples(st.just("cursor"), _cursors)
    | st.tuples(_keys, _values),
    max_size=6,
)
_json = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | _hostile_text,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(_keys | _hostile_text, inner, max_size=3)
    ),
    max_leaves=10,
)
_bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            "format": st.sampled_from(["csv", "json", "ndjson", "xlsx"]) | _json,
            "filters": st.dictionaries(_keys, _values | _json, max_size=4) | _json,
        },
    ).map(lambda body: json.dumps(body).encode())
    | _json.map(lambda value: json.dumps(value).encode())
    | st.binary(max_size=64)
)


def any_tenant_api(log: AuditLog) -> Starlette:
    """Every caller an admin of the URL's tenant: hostile input reaches the store."""
    routes = audit_log_routes(
        log, permission=lambda request: True, tenant_of=lambda r: r.path_params.get("tenant")
    )
    return Starlette(routes=[Mount(PREFIX, routes=routes)])


def call(app: Starlette, method: str, url: str, **options: Any) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.request(method, url, **options)

    return asyncio.run(send())


def no_server_error(app: Starlette, data: st.DataObject) -> None:
    tenant = data.draw(
        st.sampled_from(["acme", "globex"]) | _hostile_text.filter(lambda t: "/" not in t and t),
        label="tenant",
    )
    base = f"/t/{quote(tenant, safe='')}/api/v1/admin"
    choice = data.draw(
        st.sampled_from(["list", "one", "export", "security_logs", "aggregations"]), label="route"
    )
    if choice == "export":
        body = data.draw(_bodies, label="body")
        response = call(app, "POST", f"{base}/audit-logs/export", content=body)
    elif choice == "one":
        log_id = data.draw(_hostile_text.filter(bool), label="id")
        response = call(app, "GET", f"{base}/audit-logs/{quote(log_id, safe='')}")
    else:
        path = {"list": "/audit-logs", "aggregations": "/audit-logs/aggregations"}.get(
            choice, "/security_logs"
        )
        response = call(app, "GET", base + path, params=data.draw(_params, label="params"))
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400 and response.headers["content-type"] == "application/json":
        assert response.json()["error"]["message"]  # the API's own refusals name the problem


@pytest.fixture(scope="module")
def hostile_sqlite() -> Starlette:
    log = AuditLog("sqlite:///:memory:")
    log.write([full_record(tenant="acme"), full_record(tenant="globex")])
    return any_tenant_api(log)


def no_server_error_ever(app: Starlette) -> None:
    """:func:`no_server_error` for 150 generated requests."""

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        no_server_error(app, data)

    check()


def test_no_hostile_input_gets_a_server_error_from_sqlite(hostile_sqlite: Starlette) -> None:
    no_server_error_ever(hostile_sqlite)


@pytest.fixture(scope="module")
def hostile_es(es_url: str) -> Iterator[Starlette]:
    from elasticsearch import Elasticsearch

    store = ElasticsearchStore(Elasticsearch(es_url), prefix="test-hostile-api")
    store.setup()
    store.write([full_record(tenant="acme"), full_record(tenant="globex")])
    store.refresh_indices()
    log = AuditLog(store, spool=tempfile.mkdtemp())
    yield any_tenant_api(log)
    log.close()
    names = list(store.client.indices.get(index=store.read_pattern).body)
    store.client.indices.delete(index=",".join(names))
    store.client.indices.delete_index_template(name=store.prefix)


def test_no_hostile_input_gets_a_server_error_from_elasticsearch(hostile_es: Starlette) -> None:
    no_server_error_ever(hostile_es)
