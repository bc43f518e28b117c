"""The viewer in a real Chromium, served by uvicorn from an app audited by the middleware.

The list shows what the middleware recorded; each filter narrows it, lives in the URL and
survives a reload; paging, the detail page, the export's row count, the charts' numbers
against the aggregation API, keyboard-only use, and axe-core's rules (no violation) on every
page. The browser is Debian's Chromium and axe-core comes from npm, both installed by
``make test`` (see the Makefile); a missing one fails these tests, never skips them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

import auditwire
from auditwire import Actor, AuditLog, AuditQuery, SQLiteStore, Target
from auditwire._time import utcnow
from auditwire.asgi import AuditMiddleware
from auditwire.web import audit_log_routes
from tests.listing.conftest import ADMIN
from tests.support.servers import ROOT, in_thread

AXE = ROOT / "build" / "node" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOT = ROOT / "build" / "viewer.png"


class Headers(AuthenticationBackend):
    """``x-role`` and ``x-tenant`` headers as the caller's scopes (the browser sends them)."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        role = conn.headers.get("x-role")
        if not role:
            return None
        tenant = conn.headers.get("x-tenant", "")
        return AuthCredentials([role, f"tenant:{tenant}"]), SimpleUser(f"{role}@acme.test")


def create_app(log: AuditLog) -> Any:
    async def block(request: Request) -> Response:
        context = auditwire.current()
        assert context is not None
        context.set_action("user_blocked", target={"type": "user", "id": request.path_params["id"]})
        return PlainTextResponse("blocked")

    app = Starlette(
        routes=[
            Route("/t/{tenant}/users/{id}/block", block, methods=["POST"]),
            Mount(
                "/t/{tenant}/admin", routes=audit_log_routes(log, mounted_at="/t/{tenant}/admin")
            ),
        ],
        middleware=[Middleware(AuthenticationMiddleware, backend=Headers())],
    )
    return AuditMiddleware(app, log)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, AuditLog]]:
    """The app under uvicorn, with a day of records: 60 seeded, and requests through the
    middleware."""
    log = AuditLog(f"sqlite:///{tmp_path_factory.mktemp('viewer')}/audit.db")
    now = utcnow()
    for n in range(60):
        log.record(
            ["login", "login_failed", "user.invited", "api_key.rotated"][n % 4],
            actor=Actor(id=f"usr_{n % 5}", email=f"user{n % 5}@acme.test"),
            target=Target("user", f"usr_{n % 7}") if n % 3 else Target("api_key", f"key_{n}"),
            outcome="failure" if n % 4 == 1 else "success",
            ip_address=f"203.0.113.{n % 6}" if n % 2 else f"198.51.100.{n % 3}",
            user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0",
            tenant="acme" if n % 10 else "globex",
            timestamp=now - timedelta(minutes=11 * n + 1),
            metadata={"n": n},
        )
    with in_thread(create_app(log)) as base:
        with httpx.Client(base_url=base, headers=ADMIN) as client:
            for user in ("usr_41", "usr_42"):
                assert client.post(f"/t/acme/users/{user}/block").text == "blocked"
        assert log.flush(10)
        yield base, log
    log.close()


def viewer(base: str, query: str = "") -> str:
    return f"{base}/t/acme/admin/viewer" + (f"?{query}" if query else "")


def follow(page: Page, selector: str) -> None:
    """Click what leads to another page, and wait until that page is there."""
    with page.expect_navigation():
        page.click(selector)


def shown_ids(page: Page) -> list[str]:
    return [row.get_attribute("data-id") or "" for row in page.locator("tr[data-id]").all()]


def shown_total(page: Page) -> int:
    return int(page.locator("#total").get_attribute("data-total") or -1)


def store_of(log: AuditLog) -> SQLiteStore:
    assert isinstance(log.store, SQLiteStore)
    return log.store


def no_axe_violations(page: Page) -> None:
    assert AXE.is_file(), f"{AXE} is missing: `make test` installs axe-core from npm"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document)")
    violations = [
        (v["id"], v["help"], [n["target"] for n in v["nodes"]]) for v in result["violations"]
    ]
    assert violations == [], violations


def test_the_list_shows_what_the_middleware_recorded(
    served: tuple[str, AuditLog], page: Page
) -> None:
    base, log = served
    assert log.flush(10)  # the reads of earlier pages are recorded too: count them in
    expected = [r.id for r in store_of(log).search(AuditQuery(tenant="acme", limit=20))]
    answer = page.goto(viewer(base))
    assert shown_ids(page) == expected
    assert answer is not None and "default-src 'none'" in answer.headers["content-security-policy"]
    blocked = page.locator("tr[data-id]", has_text="user_blocked")
    assert blocked.count() == 2
    assert "admin@acme.test" in blocked.first.inner_text()
    assert "✓ Success" in blocked.first.inner_text()  # the outcome in words, not colour alone
    assert page.locator("tr[data-id] time[datetime]").count() == 20
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    no_axe_violations(page)


@pytest.mark.parametrize(
    ("field", "value", "query"),
    [
        ("f-users", "user3@acme.test", {"users": ("user3@acme.test",)}),
        ("f-log_types", "api_key", {"categories": ("api_key",)}),
        ("f-log_events", "login_failed, login", {"actions": ("login_failed", "login")}),
        ("f-targetType", "api_key", {"target_types": ("api_key",)}),
        ("f-targetId", "usr_2", {"target_ids": ("usr_2",)}),
        ("f-sourceIp", "203.0.113.0/24", {"source_ips": ("203.0.113.0/24",)}),
        ("f-outcome", "failure", {"outcomes": ("failure",)}),
    ],
)
def test_each_filter_narrows_the_list_and_survives_a_reload(
    served: tuple[str, AuditLog], page: Page, field: str, value: str, query: dict[str, Any]
) -> None:
    base, log = served
    page.goto(viewer(base))
    everything = shown_total(page)
    if field == "f-outcome":
        page.select_option(f"#{field}", value)
    else:
        page.fill(f"#{field}", value)
    follow(page, "button[type=submit]")
    expected = store_of(log).count(
        AuditQuery(tenant="acme", start=utcnow() - timedelta(days=7), **query)
    )
    assert 0 < shown_total(page) == expected < everything
    url = page.url
    page.reload()
    assert page.url == url and shown_total(page) == expected
    if field != "f-outcome":
        assert page.input_value(f"#{field}") == value  # the form shows the filter it applies
    for record in shown_ids(page):
        assert store_of(log).get(record).tenant == "acme"


def test_dates_and_quick_ranges(served: tuple[str, AuditLog], page: Page) -> None:
    base, log = served
    page.goto(viewer(base))
    assert log.flush(10)
    hour = store_of(log).count(AuditQuery(tenant="acme", start=utcnow() - timedelta(hours=1)))
    follow(page, "text=Last hour")
    assert "range=1h" in page.url and shown_total(page) == hour
    assert page.locator("nav.quick a[aria-current]").inner_text() == "Last hour"
    today = utcnow().date().isoformat()
    start = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    assert log.flush(10)
    expected = store_of(log).count(
        AuditQuery(tenant="acme", start=start, end=start + timedelta(days=1))
    )
    page.goto(viewer(base, f"from={today}&to={today}"))
    assert page.input_value("#f-from") == today
    assert shown_total(page) == expected
    page.goto(viewer(base, "from=yesterday"))
    assert page.locator(".problem").inner_text().startswith("Invalid filter: from")
    no_axe_violations(page)


def test_paging_by_cursor(served: tuple[str, AuditLog], page: Page) -> None:
    base, log = served
    assert log.flush(10)
    expected = [r.id for r in store_of(log).search(AuditQuery(tenant="acme", limit=40))]
    page.goto(viewer(base, "range=all"))
    first = shown_ids(page)
    total = shown_total(page)
    assert len(first) == 20 and total > 40
    follow(page, "nav.pages a:text-is('Older records')")
    second = shown_ids(page)
    assert first + second == expected  # by cursor: the reads recorded meanwhile move nothing
    assert shown_total(page) >= total
    follow(page, "nav.pages a:text-is('Newest')")
    assert urlsplit(page.url).query == "range=all"
    shown = shown_ids(page)  # the first page again, below the reads recorded since
    newer = shown.index(first[0])
    assert shown[newer:] == first[: 20 - newer] and newer <= 2


def test_the_detail_page_shows_every_field_and_the_raw_json(
    served: tuple[str, AuditLog], page: Page
) -> None:
    base, log = served
    page.goto(viewer(base, "log_events=login"))
    record_id = shown_ids(page)[3]
    follow(page, f"tr[data-id='{record_id}'] a")
    assert page.url.endswith(f"/viewer/{record_id}")
    record = store_of(log).get(record_id)
    raw = json.loads(page.locator("pre[aria-label='The record as JSON']").inner_text())
    assert raw == record.to_api()
    assert record.actor.email and record.actor.email in page.locator("dl.fields").inner_text()
    no_axe_violations(page)
    follow(page, "text=Back to the list")
    assert urlsplit(page.url).path.endswith("/viewer")
    # Another tenant's record is not found from this tenant's viewer.
    globex = store_of(log).search(AuditQuery(tenant="globex", limit=1))[0]
    answer = page.goto(viewer(base).replace("/viewer", f"/viewer/{globex.id}"))
    assert answer is not None and answer.status == 404
    no_axe_violations(page)


@pytest.mark.parametrize("export_format", ["csv", "json", "ndjson"])
def test_an_export_holds_the_filters_records(
    served: tuple[str, AuditLog], page: Page, export_format: str
) -> None:
    base, _ = served
    page.goto(viewer(base, "range=all&outcome=failure"))
    total = shown_total(page)
    link = page.locator(f"a:has-text('Export {export_format.upper()}')")
    # Fetched as the page's own request (its headers, from its URL): the browser's download
    # manager is not what is under test.
    answer = page.request.get(urljoin(page.url, link.get_attribute("href") or ""))
    assert answer.ok and "attachment" in answer.headers["content-disposition"]
    text = answer.text()
    if export_format == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert {row["outcome"] for row in rows} == {"failure"}
        count = len(rows)
    elif export_format == "json":
        count = len(json.loads(text))
    else:
        count = len(text.splitlines())
    assert count == total > 0


def test_the_charts_numbers_are_the_aggregation_apis(
    served: tuple[str, AuditLog], page: Page
) -> None:
    base, _ = served
    # A range that ends before this module's reads began: they are records too, and the
    # read of the page itself would land in the API's count.
    end = utcnow() - timedelta(minutes=5)
    filters = urlencode({"from": (end - timedelta(days=1)).isoformat(), "to": end.isoformat()})
    page.goto(viewer(base, filters))
    with httpx.Client(base_url=base, headers=ADMIN) as api:

        def counts(extra: str) -> dict[str, Any]:
            answer = api.get(f"/t/acme/admin/audit-logs/aggregations?{filters}&{extra}")
            assert answer.status_code == 200, answer.text
            data: dict[str, Any] = answer.json()["data"]
            return data

        timeline = counts("interval=hour")["timeline"]["buckets"]
        rows = page.locator("figure[data-chart='timeline'] tr[data-start]").all()
        shown = [
            {
                "start": row.get_attribute("data-start"),
                "total": int(row.get_attribute("data-total") or -1),
                "counts": {
                    cell.get_attribute("data-outcome"): int(cell.text_content() or "")
                    for cell in row.locator("td[data-outcome]").all()
                },
            }
            for row in rows
        ]
        assert shown == timeline and len(shown) > 5
        failed = counts("interval=hour&outcome=failure&log_types=authentication")
        failed_rows = page.locator("figure[data-chart='failed-logins'] tr[data-start]").all()
        assert [int(r.get_attribute("data-total") or -1) for r in failed_rows] == [
            b["total"] for b in failed["timeline"]["buckets"]
        ]
        for chart, extra, field in [
            ("top-actors", "top=actor_id", "actor_id"),
            ("top-failure-ips", "top=source_ip&outcome=failure", "source_ip"),
            ("categories", "top=category&size=20", "category"),
        ]:
            values = [
                {
                    "value": row.get_attribute("data-value"),
                    "count": int(row.get_attribute("data-count") or -1),
                }
                for row in page.locator(f"figure[data-chart='{chart}'] tr[data-value]").all()
            ]
            assert values == counts(extra)["top"][field] and values, chart


def test_keyboard_only(served: tuple[str, AuditLog], page: Page) -> None:
    """Skip link first; the form's controls reachable in order and submitted with Enter; a
    record opened with Enter."""
    base, _ = served
    page.goto(viewer(base))
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert urlsplit(page.url).fragment == "main"
    reached: list[str] = []  # a date field takes a Tab stop per part (month, day, year)
    while not reached or reached[-1] != "f-users":
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id")
        if not reached or reached[-1] != focused:
            reached.append(focused)
        assert len(reached) <= 3, reached
    assert reached == ["f-from", "f-to", "f-users"]
    page.keyboard.type("user1@acme.test")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert dict(parse_qsl(urlsplit(page.url).query)).get("users") == "user1@acme.test"
    first = shown_ids(page)[0]
    page.focus(f"tr[data-id='{first}'] a")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/viewer/{first}")
    focusable = page.evaluate(
        "[...document.querySelectorAll('a, button, input, select, summary, [tabindex]')]"
        ".filter(e => e.tabIndex < 0).length"
    )
    assert focusable == 0  # nothing clickable is out of the keyboard's reach


def test_without_permission_or_for_another_tenant_the_page_is_refused(
    served: tuple[str, AuditLog], browser: Browser
) -> None:
    base, _ = served
    for headers, status in [({}, 403), ({"x-role": "admin", "x-tenant": "globex"}, 403)]:
        context = browser.new_context(extra_http_headers=headers, bypass_csp=True)
        opened = context.new_page()
        answer = opened.goto(viewer(base))
        assert answer is not None and answer.status == status
        assert opened.locator("[role=alert]").count() == 1
        no_axe_violations(opened)
        context.close()


def test_the_pages_fetch_nothing_and_break_no_policy_of_their_own(
    served: tuple[str, AuditLog], browser: Browser
) -> None:
    """Under their own content security policy (no script, inline styles and images only),
    the pages load no other resource and the browser reports no violation."""
    base, _ = served
    context = browser.new_context(extra_http_headers=ADMIN)
    opened = context.new_page()
    complaints: list[str] = []
    opened.on("console", lambda message: complaints.append(message.text))
    requested: list[str] = []
    opened.on("request", lambda request: requested.append(request.url))
    opened.goto(viewer(base, "range=all"))
    record_id = shown_ids(opened)[0]
    opened.goto(viewer(base).replace("/viewer", f"/viewer/{record_id}"))
    context.close()
    assert complaints == []
    assert [urlsplit(url).path for url in requested] == [
        "/t/acme/admin/viewer",
        f"/t/acme/admin/viewer/{record_id}",
    ]
