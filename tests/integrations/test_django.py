"""The Django middleware over a real Django project with ``django.contrib.auth``, through
Django's test client (its WSGI handler) and its async client (its ASGI handler): the logged-in
user is the actor, the URL pattern is the route, a redirect to the login page is a refusal."""

from __future__ import annotations

import os
from collections.abc import Iterator

import django
import pytest

from auditwire import Actor, AuditLog, AuditQuery, AuditRecord, SQLiteStore

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.django_project.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import AsyncClient, Client  # noqa: E402

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def ada() -> Iterator[User]:
    call_command("migrate", verbosity=0)
    user = User.objects.create_user("ada", "ada@acme.test", "correct horse")
    yield user
    user.delete()


@pytest.fixture(scope="module")
def root(ada: User) -> Iterator[User]:
    user = User.objects.create_superuser("root", "root@acme.test", "not used")
    yield user
    user.delete()


def recorded(since: int) -> list[AuditRecord]:
    """The records since the ``since``-th, oldest first."""
    log = settings.AUDIT_LOG
    assert log.flush(10)
    assert isinstance(log.store, SQLiteStore)
    return list(reversed(log.store.search(AuditQuery(limit=1000))))[since:]


def count() -> int:
    return len(recorded(0))


def test_the_logged_in_user_is_the_actor_under_wsgi(ada: User) -> None:
    before = count()
    client = Client()
    assert client.post("/invoices/7/void").status_code == 302  # to the login page
    assert client.post("/login/", {"username": "ada", "password": "correct horse"}).content == b"in"
    assert client.post("/invoices/7/void").content == b"voided 7"
    refused, login, voided = recorded(before)
    assert (refused.action, refused.outcome, refused.actor.name) == (
        "access_denied",
        "failure",
        "anonymous",
    )
    me = Actor(type="user", id=str(ada.pk), email="ada@acme.test", name="ada")
    assert (login.action, login.actor) == ("login", me)  # logged in by the view itself
    assert (voided.action, voided.actor, voided.outcome) == ("settings_changed", me, "success")
    assert voided.request is not None and voided.request.route == "/invoices/<int:n>/void"


async def test_the_same_under_asgi(ada: User) -> None:
    before = await _count()
    client = AsyncClient()
    await client.post("/login/", {"username": "ada", "password": "correct horse"})
    response = await client.post("/invoices/9/void")
    assert response.content == b"voided 9"
    hello = await client.get("/t/acme/hello")
    assert hello.status_code == 200
    login, voided, greeted = await _recorded(before)
    assert login.actor == voided.actor
    assert voided.actor.id == str(ada.pk) and voided.target is not None
    assert voided.request is not None and voided.request.route == "/invoices/<int:n>/void"
    assert (greeted.tenant, greeted.request.route if greeted.request else None) == (
        "acme",
        "/t/<str:tenant>/hello",
    )


async def _count() -> int:
    from asgiref.sync import sync_to_async

    return int(await sync_to_async(count)())


async def _recorded(since: int) -> list[AuditRecord]:
    from asgiref.sync import sync_to_async

    found: list[AuditRecord] = await sync_to_async(recorded)(since)
    return found


def test_a_django_user_from_the_orm_is_an_actor_anywhere(ada: User, log: AuditLog) -> None:
    """``log.record(actor=user)`` with the ORM's own objects, outside any request: the user is
    read through Actor.of (pk, email, get_username()), the anonymous user is anonymous."""
    from django.contrib.auth.models import AnonymousUser

    blocked = log.record("user_blocked", actor=User.objects.get(username="ada"))
    assert blocked.actor == Actor(type="user", id=str(ada.pk), email="ada@acme.test", name="ada")
    anonymous = log.record("login_failed", actor=AnonymousUser(), outcome="failure")
    assert anonymous.actor == Actor(type="user")


def test_the_audit_log_api_in_the_urlconf(ada: User, root: User) -> None:
    """The API's routes and rules as Django views: superusers read, the tenant in the URL is
    the caller's, 400s, 404s, 405s and the export; each read recorded once, as request.user."""
    log = settings.AUDIT_LOG
    acme, globex = log.record("login", tenant="acme"), log.record("login", tenant="globex")
    before = count()
    client = Client()
    assert client.get("/audit/audit-logs").json()["error"]["code"] == "forbidden"  # anonymous
    client.force_login(ada)
    assert client.get("/audit/audit-logs").status_code == 403  # not a superuser
    client.force_login(root)
    every = client.get("/audit/audit-logs", {"action": "login", "per_page": 2}).json()
    assert [r["id"] for r in every["data"]] == [globex.id, acme.id]
    own = client.get("/t/acme/audit/audit-logs", {"action": "login"}).json()
    assert {r["tenant"] for r in own["data"]} == {"acme"}
    assert acme.id in {r["id"] for r in own["data"]}
    other = client.get("/t/globex/audit/audit-logs")
    assert (other.status_code, other.json()["error"]["code"]) == (403, "forbidden_tenant")
    assert client.get(f"/t/acme/audit/audit-logs/{globex.id}").status_code == 404
    assert client.get(f"/t/acme/audit/audit-logs/{acme.id}").json()["data"]["id"] == acme.id
    bad = client.get("/audit/audit-logs", {"per_page": "0"})
    assert (bad.status_code, bad.json()["error"]["parameter"]) == (400, "per_page")
    assert client.post("/audit/audit-logs").status_code == 405
    exported = client.post(
        "/t/acme/audit/audit-logs/export",
        {"format": "csv", "filters": {"action": "login"}},
        content_type="application/json",
    )
    assert exported["content-type"].startswith("text/csv")
    rows = b"".join(exported.streaming_content).decode().splitlines()
    assert rows[0].startswith("id,") and len(rows) >= 2
    me = Actor(type="user", id=str(root.pk), email="root@acme.test", name="root")
    calls = [
        (r.action, r.tenant, r.actor == me, r.request.status if r.request else None)
        for r in recorded(before)
    ]
    assert calls == [
        ("access_denied", None, False, 403),  # anonymous
        ("access_denied", None, False, 403),  # ada
        ("audit_log.read", None, True, None),
        ("audit_log.read", "acme", True, None),
        ("access_denied", "globex", True, 403),
        ("http.request", "acme", True, 404),
        ("audit_log.read", "acme", True, None),
        ("http.request", None, True, 400),
        ("http.request", None, True, 405),
        ("export.created", "acme", True, None),
    ]


async def test_the_audit_log_api_under_asgi(root: User) -> None:
    from asgiref.sync import sync_to_async

    before = await _count()
    client = AsyncClient()
    await sync_to_async(client.force_login)(root)
    answer = await client.get("/t/acme/audit/audit-logs", {"action": "login"})
    assert answer.status_code == 200
    (read,) = await _recorded(before)
    assert (read.action, read.tenant, read.actor.id) == ("audit_log.read", "acme", str(root.pk))
    assert read.request is not None and read.request.route == "/t/<str:tenant>/audit/audit-logs"


def test_the_viewer_in_the_urlconf(root: User) -> None:
    seeded = settings.AUDIT_LOG.record("login", tenant="acme", actor={"email": "bob@acme.test"})
    client = Client()
    assert client.get("/t/acme/audit/viewer").status_code == 403
    client.force_login(root)
    page = client.get("/t/acme/audit/viewer")
    assert page.status_code == 200 and page["content-type"].startswith("text/html")
    assert f'data-id="{seeded.id}"' in page.content.decode()
    assert b"bob@acme.test" in client.get(f"/t/acme/audit/viewer/{seeded.id}").content
    exported = client.get("/t/acme/audit/viewer/export", {"format": "csv", "range": "all"})
    assert seeded.id in b"".join(exported.streaming_content).decode()
