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
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from auditwire.audit_log import AuditLog
from auditwire.capture.context import current
from auditwire.errors import InvalidRecordError, MissingDependencyError
from auditwire.record import Actor
from auditwire.wsgi import AuditMiddleware, init_flask

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from auditwire.capture.options import CaptureOptions

__all__ = ["EXTENSION_KEY", "Audit", "login_user_actor"]

logger = logging.getLogger("auditwire")

#: Where the extension keeps itself on the app (``app.extensions["auditwire"]``).
EXTENSION_KEY = "auditwire"


def login_user_actor() -> Actor | None:
    """flask-login's ``current_user`` as an actor, when it is authenticated (else ``None``):
    ``get_id()``, ``email``, and ``name`` or ``username`` (:meth:`Actor.of`)."""
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
    return Actor.of(user)


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
        init_flask(app)
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
