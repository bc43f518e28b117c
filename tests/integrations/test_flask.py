"""The Flask extension over real Flask and flask-login, in-process and under gunicorn: the
logged-in user is the actor and the route template is the route, from one documented line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from flask import Flask

import auditwire
from auditwire import Actor, AuditLog, AuditQuery, SQLiteStore
from auditwire.integrations.flask import Audit
from tests.records import written as records
from tests.support.flask_login_app import create_app

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_under_gunicorn(tmp_path: Path) -> None:
    database = tmp_path / "audit.db"
    port = _free_port()
    errors = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "tests.support.flask_login_app:create_app()",
         "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        cwd=ROOT,
        env={**os.environ, "AUDITWIRE_STORE": f"sqlite:///{database}",
             "AUDITWIRE_SPOOL": str(tmp_path / "spool"), "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
        stdout=subprocess.DEVNULL,
        stderr=errors,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            while True:
                try:
                    client.get("/hello")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "gunicorn did not start"
                    time.sleep(0.2)
            assert client.post("/login", data={"user": "grace"}).text == "in"
            assert client.post("/users/7/block").text == "blocked"
    finally:
        server.terminate()
        stopped = server.wait(timeout=60)
        errors.close()
    assert stopped == 0, (tmp_path / "gunicorn.log").read_text()
    store = SQLiteStore(database, readonly=True)
    blocked = store.search(AuditQuery(actions=("user_blocked",)))
    assert [(r.actor.id, r.actor.email) for r in blocked] == [("grace", "grace@acme.test")]
    assert blocked[0].request is not None
    assert blocked[0].request.route == "/users/<int:user_id>/block"
