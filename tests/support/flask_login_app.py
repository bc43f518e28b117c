"""A Flask app with flask-login, audited with the extension's one line: ``create_app()`` for
in-process tests, and for gunicorn (``tests.support.flask_login_app:create_app()``), which
reads where records go from ``AUDITWIRE_STORE``."""

from __future__ import annotations

import os

from flask import Flask, request
from flask_login import LoginManager, UserMixin, login_required, login_user

import auditwire
from auditwire import AuditLog
from auditwire.integrations.flask import Audit


class User(UserMixin):  # type: ignore[misc]  # flask-login is untyped
    def __init__(self, user_id: str) -> None:
        self.id = user_id
        self.email = f"{user_id}@acme.test"
        self.name = user_id.capitalize()
        self.tenant = "acme"  # everyone here works for one tenant
        self.is_admin = user_id == "ada"


def create_app(audit_log: AuditLog | None = None) -> Flask:
    app = Flask(__name__)
    app.secret_key = "test only"
    app.config["AUDITWIRE_STORE"] = os.environ.get("AUDITWIRE_STORE")
    logins = LoginManager(app)

    @logins.user_loader  # type: ignore[untyped-decorator]
    def load(user_id: str) -> User:
        return User(user_id)

    @app.post("/login")
    def login() -> str:
        login_user(User(request.form["user"]))
        audit = auditwire.current()
        assert audit is not None
        audit.set_action("login")
        return "in"

    @app.post("/users/<int:user_id>/block")
    @login_required  # type: ignore[untyped-decorator]
    def block(user_id: int) -> str:
        audit = auditwire.current()
        assert audit is not None
        audit.set_action("user_blocked", target={"type": "user", "id": user_id})
        return "blocked"

    @app.get("/hello")
    def hello() -> str:
        return "hello"

    Audit(app, audit_log)
    return app
