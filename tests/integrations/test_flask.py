"""The Flask extension over real Flask and flask-login, in-process and under gunicorn: the
logged-in user is the actor and the route template is the route, from one documented line."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

import auditwire
from auditwire import Actor, AuditLog, AuditQuery, SQLiteStore
from auditwire.integrations.flask import Audit
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
