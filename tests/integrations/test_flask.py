"""The Flask extension over real Flask and flask-login, in-process and under gunicorn: the
logged-in user is the actor and the route template is the route, from one documented line."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from flask import Flask
from flask_login import current_user

import auditwire
from auditwire import Actor, AuditLog, AuditQuery, SQLiteStore
from auditwire.integrations.flask import Audit, audit_log_blueprint
from tests.records import written as records
from tests.support.flask_login_app import create_app
from tests.support.servers import free_port, serving

ROOT = Path(__file__).resolve().parents[2]


def test_the_logged_in_user_is_the_actor(log: AuditLog) -> None:
    client = create_app(log).test_client()
    client.post("/users/41/block", buffered=True)  # not logged in yet: refused, anonymously
    client.post("/login", data={"user": "ada"}, buffered=True)
    client.post("/users/42/block", buffered=True)
    client.get("/hello", buffered=True)
    found = {r.action: r for r in records(log)}
    assert found["access_denied"].actor.name == "anonymous"
    ada = Actor(type="user", id="ada", email="ada@acme.test", name="Ada")
    assert found["login"].actor == ada  # logged in by the view itself
    assert found["user_blocked"].actor == ada
    assert found["user_blocked"].request is not None
    assert found["user_blocked"].request.route == "/users/<int:user_id>/block"
    assert found["http.request"].actor == ada


def test_anonymous_and_a_views_own_actor(log: AuditLog) -> None:
    app = Flask(__name__)

    @app.get("/")
    def anonymous() -> str:
        return "hi"

    @app.get("/system")
    def system() -> str:
        context = auditwire.current()
        assert context is not None
        context.set_actor(Actor.system("cron"))
        return "ok"

    Audit().init_app(app, log)  # no LoginManager: actors from the views
    client = app.test_client()
    client.get("/", buffered=True)
    client.get("/system", buffered=True)
    actors = sorted((r.request.route if r.request else "", r.actor.type) for r in records(log))
    assert actors == [("/", "user"), ("/system", "system")]
    assert app.extensions["auditwire"].audit_log is log


def test_under_gunicorn(tmp_path: Path) -> None:
    database = tmp_path / "audit.db"
    port = free_port()
    with serving(
        ["gunicorn", "tests.support.flask_login_app:create_app()",
         "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        port,
        tmp_path / "gunicorn.log",
        {"AUDITWIRE_STORE": f"sqlite:///{database}", "AUDITWIRE_SPOOL": str(tmp_path / "spool")},
    ) as client:  # fmt: skip
        assert client.post("/login", data={"user": "grace"}).text == "in"
        assert client.post("/users/7/block").text == "blocked"
    store = SQLiteStore(database, readonly=True)
    blocked = store.search(AuditQuery(actions=("user_blocked",)))
    assert [(r.actor.id, r.actor.email) for r in blocked] == [("grace", "grace@acme.test")]
    assert blocked[0].request is not None
    assert blocked[0].request.route == "/users/<int:user_id>/block"


def test_a_flask_login_user_is_an_actor_anywhere(log: AuditLog) -> None:
    from flask_login import AnonymousUserMixin

    from tests.support.flask_login_app import User

    rotated = log.record("api_key.rotated", actor=User("grace"), target={"type": "api_key"})
    assert rotated.actor == Actor(type="user", id="grace", email="grace@acme.test", name="Grace")
    assert log.record("logout", actor=AnonymousUserMixin()).actor == Actor(type="user")


def body(response: Any) -> Any:
    """A JSON answer's data (and that it was JSON)."""
    assert response.is_json
    return response.json


def test_the_audit_log_api_as_a_blueprint(log: AuditLog) -> None:
    """The API's routes and rules under Flask: who may read, the tenant in the URL, 400s and
    404s, the export; each read recorded once, as the logged-in reader."""
    seeded = [log.record("login", tenant=tenant) for tenant in ("acme", "acme", "globex")]
    app = create_app(log)
    app.register_blueprint(
        audit_log_blueprint(
            log, permission=lambda request: current_user.is_authenticated and current_user.is_admin
        ),
        url_prefix="/t/<tenant>/api/v1/admin",
    )
    client = app.test_client()  # responses buffered, so closed: the middleware then records
    get = functools.partial(client.get, buffered=True)
    post = functools.partial(client.post, buffered=True)
    acme = "/t/acme/api/v1/admin"
    assert body(get(f"{acme}/audit-logs"))["error"]["code"] == "forbidden"  # anonymous
    post("/login", data={"user": "grace"})
    assert get(f"{acme}/audit-logs").status_code == 403  # not an admin
    post("/login", data={"user": "ada"})
    listed = get(f"{acme}/audit-logs?action=login")
    assert listed.status_code == 200
    assert [r["id"] for r in body(listed)["data"]] == [seeded[1].id, seeded[0].id]
    other = get("/t/globex/api/v1/admin/audit-logs")
    assert (other.status_code, body(other)["error"]["code"]) == (403, "forbidden_tenant")
    assert get(f"{acme}/audit-logs/{seeded[2].id}").status_code == 404  # globex's
    assert body(get(f"{acme}/audit-logs/{seeded[0].id}"))["data"]["id"] == seeded[0].id
    bad = get(f"{acme}/audit-logs?per_page=0")
    assert (bad.status_code, body(bad)["error"]["parameter"]) == (400, "per_page")
    exported = post(
        f"{acme}/audit-logs/export", json={"format": "ndjson", "filters": {"action": "login"}}
    )
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    assert len(exported.text.splitlines()) == 2
    assert body(get(f"{acme}/openapi.json"))["openapi"].startswith("3.")
    # Each call is one record: a read as the read, anything else as the request it was.
    calls = [
        (r.action, r.tenant, r.actor.id, r.request.status)
        for r in records(log)
        if r.request is not None and (r.request.route or "").startswith("/t/<tenant>")
    ]
    assert sorted(calls, key=str) == sorted(
        [
            ("access_denied", "acme", None, 403),  # anonymous
            ("access_denied", "acme", "grace", 403),  # not an admin
            ("audit_log.read", "acme", "ada", None),
            ("access_denied", "globex", "ada", 403),  # another tenant
            ("http.request", "acme", "ada", 404),
            ("audit_log.read", "acme", "ada", None),
            ("http.request", "acme", "ada", 400),
            ("export.created", "acme", "ada", None),
            ("http.request", "acme", "ada", 200),  # the OpenAPI description
        ],
        key=str,
    )
    (export_record,) = [r for r in records(log) if r.action == "export.created"]
    assert export_record.actor == Actor(type="user", id="ada", email="ada@acme.test", name="Ada")
    assert export_record.metadata == {"format": "ndjson", "filters": {"action": "login"}}


def test_the_viewer_in_the_blueprint(log: AuditLog) -> None:
    """The viewer's pages come with the blueprint, under the same rules."""
    seeded = log.record("login", tenant="acme", actor={"email": "bob@acme.test"})
    app = create_app(log)
    app.register_blueprint(
        audit_log_blueprint(log, permission=lambda request: current_user.is_authenticated),
        url_prefix="/t/<tenant>/admin",
    )
    client = app.test_client()
    assert client.get("/t/acme/admin/viewer", buffered=True).status_code == 403
    client.post("/login", data={"user": "ada"}, buffered=True)
    page = client.get("/t/acme/admin/viewer", buffered=True)
    assert page.status_code == 200 and page.content_type.startswith("text/html")
    assert f'data-id="{seeded.id}"' in page.text
    detail = client.get(f"/t/acme/admin/viewer/{seeded.id}", buffered=True)
    assert "bob@acme.test" in detail.text
    exported = client.get("/t/acme/admin/viewer/export?format=ndjson&range=all", buffered=True)
    assert seeded.id in exported.text
    assert client.get("/t/globex/admin/viewer", buffered=True).status_code == 403
