"""Flask: one line audits every request, with the logged-in user as the actor.

    from auditwire.integrations.flask import Audit

    Audit(app, AuditLog("sqlite:///auditwire.db"))      # or Audit(...).init_app(app) later

:class:`Audit` is a Flask extension in the usual form. It installs the WSGI middleware
(:class:`auditwire.wsgi.AuditMiddleware`, with its options), notes each request's route
template (``/users/<int:user_id>``), and — while the request context is still alive, after
the view ran — takes flask-login's ``current_user`` as the actor when it is authenticated and
the view named no actor of its own: its id (``get_id()``), ``email`` and ``name`` (or
``username``). Without flask-login installed, or without a ``LoginManager`` on the app, actors
come from the handlers (``auditwire.current().set_actor(...)``) as everywhere else. Without an
audit log, one is made on ``app.config["AUDITWIRE_STORE"]`` (else the default store).

:func:`audit_log_blueprint` serves the audit-log API (the routes of :mod:`auditwire.web`, with
the same rules) as a blueprint, its reads recorded as flask-login's user:

    app.register_blueprint(
        audit_log_blueprint(log, permission=lambda request: current_user.is_admin),
        url_prefix="/t/<tenant>/api/v1/admin",
    )
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from auditwire.audit_log import AuditLog
from auditwire.capture.context import current
from auditwire.errors import InvalidRecordError, MissingDependencyError
from auditwire.listing.api import Caller, Operation
from auditwire.record import Actor
from auditwire.web import audit_log_api, read_recorder, user_tenant
from auditwire.wsgi import AuditMiddleware, init_flask

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from auditwire.capture.options import CaptureOptions

__all__ = [
    "EXTENSION_KEY",
    "Audit",
    "audit_log_blueprint",
    "login_user",
    "login_user_actor",
    "login_user_tenant",
]

logger = logging.getLogger("auditwire")

#: Where the extension keeps itself on the app (``app.extensions["auditwire"]``).
EXTENSION_KEY = "auditwire"


def login_user() -> object:
    """flask-login's ``current_user`` when it is authenticated, else ``None`` (also without
    flask-login, or without a ``LoginManager`` on the app)."""
    try:
        from flask import current_app
        from flask_login import current_user
    except ImportError:
        return None
    if getattr(current_app, "login_manager", None) is None:
        return None
    user = current_user._get_current_object()  # the proxy's object, read once
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def login_user_actor() -> Actor | None:
    """flask-login's ``current_user`` as an actor, when it is authenticated (else ``None``):
    ``get_id()``, ``email``, and ``name`` or ``username`` (:meth:`Actor.of`)."""
    return Actor.of(login_user())


def login_user_tenant(request: Any) -> str | None:
    """The logged-in user's ``tenant`` attribute (see :func:`auditwire.web.user_tenant`)."""
    return user_tenant(login_user())


def audit_log_blueprint(
    audit_log: AuditLog,
    *,
    permission: Callable[[Any], bool],
    tenant_of: Callable[[Any], str | None] = login_user_tenant,
    all_tenants: Callable[[Any], bool] | None = None,
    caller_of: Callable[[Any], object] | None = None,
    tenant_param: str = "tenant",
    mounted_at: str = "/t/{tenant}/api/v1/admin",
    name: str = "auditwire_api",
) -> Any:
    """The audit-log API as a Flask blueprint: the routes, rules and answers of
    :func:`auditwire.web.audit_log_routes`. Register it under a prefix, with ``<tenant>`` for
    per-tenant URLs.

    Every hook takes Flask's ``request``. ``permission`` says who may read audit logs at all:
    Flask has no roles of its own, so the application says (say, its admin flag).
    ``tenant_of`` tells the caller's tenant, which must be the URL's (by default the logged-in
    user's ``tenant`` attribute); callers for whom ``all_tenants`` answers true read any
    tenant. ``caller_of`` names the reader in the records of reads (by default flask-login's
    logged-in user)."""
    try:
        from flask import Blueprint, Response, jsonify, request
    except ImportError:
        raise MissingDependencyError("auditwire.integrations.flask", "flask") from None
    api = audit_log_api(audit_log, mounted_at)

    def reader() -> object:
        return login_user() if caller_of is None else caller_of(request)

    def view(operation: Operation) -> Callable[..., Any]:
        def answer(**path: str) -> Any:
            caller = Caller.asking(request, permission, tenant_of, all_tenants)
            answered = api.answer(
                operation,
                caller,
                read_recorder(audit_log, reader, request.remote_addr),
                url_tenant=path.get(tenant_param),
                params=request.args,
                log_id=path.get("log_id", ""),
                body=request.get_data() if operation == "export" else b"",
            )
            if isinstance(answered.body, Mapping):
                response = jsonify(answered.body)
            else:  # a page, or an export's chunks
                response = Response(answered.body, content_type=answered.media_type)
            response.status_code = answered.status
            response.headers.update(answered.headers)
            return response

        return answer

    blueprint = Blueprint(name, __name__)
    blueprint.add_url_rule("/openapi.json", "openapi", view("openapi"), methods=["GET"])
    blueprint.add_url_rule("/audit-logs", "list", view("list"), methods=["GET"])
    blueprint.add_url_rule("/audit-logs/aggregations", "aggregations", view("aggregations"))
    blueprint.add_url_rule("/audit-logs/export", "export", view("export"), methods=["POST"])
    blueprint.add_url_rule("/audit-logs/<log_id>", "get", view("get"), methods=["GET"])
    blueprint.add_url_rule("/security_logs", "security_logs", view("security_logs"))
    blueprint.add_url_rule("/viewer", "viewer", view("viewer"))
    blueprint.add_url_rule("/viewer/export", "viewer_export", view("viewer_export"))
    blueprint.add_url_rule("/viewer/<log_id>", "viewer_record", view("viewer_record"))
    return blueprint


class Audit:
    """The Flask extension (see the module). ``options`` are the middleware's typed options
    (:class:`~auditwire.capture.options.CaptureOptions`)."""

    def __init__(
        self,
        app: Any = None,
        audit_log: AuditLog | None = None,
        **options: Unpack[CaptureOptions],
    ) -> None:
        self.audit_log = audit_log
        self.options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any, audit_log: AuditLog | None = None) -> None:
        try:
            import flask  # noqa: F401
        except ImportError:
            raise MissingDependencyError("auditwire.integrations.flask", "flask") from None
        log = audit_log or self.audit_log
        if log is None:
            log = AuditLog(app.config.get("AUDITWIRE_STORE"))
        self.audit_log = log
        init_flask(app, self.options.get("tenant_param", "tenant"))
        app.after_request(self._note_login_user)
        app.wsgi_app = AuditMiddleware(app.wsgi_app, log, **self.options)
        app.extensions[EXTENSION_KEY] = self

    @staticmethod
    def _note_login_user(response: Any) -> Any:
        """After the view, in its request context: the logged-in user as the actor, unless the
        view named one. Never fails the request."""
        context = current()
        if context is not None and context.actor is None:
            try:
                actor = login_user_actor()
                if actor is not None:
                    context.set_actor(actor)
            except (InvalidRecordError, RuntimeError):
                logger.exception("auditwire: could not read flask-login's current_user")
        return response
