"""FastAPI: the app's own authentication dependency names the audit actor, in one line.

    from auditwire.integrations.fastapi import audited

    @app.post("/api-keys/{key}/rotate")
    def rotate(key: str, user: User = Depends(audited(get_current_user))): ...

``audited(dependency)`` is a dependency that resolves ``dependency`` as FastAPI would (its own
parameters, sub-dependencies and caching included), makes its answer the request's audit actor
(:func:`actor_of`), and returns it unchanged — so swapping ``Depends(get_current_user)`` for
``Depends(audited(get_current_user))`` is the whole change. It works on a router or the app too:
``APIRouter(dependencies=[Depends(audited(get_current_user))])``. The middleware itself is
``app.add_middleware(AuditMiddleware, audit_log=log, ...)`` (:mod:`auditwire.asgi`), typed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from auditwire.capture.context import current
from auditwire.errors import InvalidRecordError, MissingDependencyError
from auditwire.record import Actor

__all__ = ["actor_of", "audited"]

logger = logging.getLogger("auditwire")


def actor_of(user: object) -> Actor | None:
    """The actor a dependency's answer names (:meth:`Actor.of`: an :class:`Actor`, a mapping
    in the record's shape, an object with an ``auditwire_actor()`` method, or any user
    object's ``id``, ``email`` and ``name``); ``None`` names nobody. A text answer is refused,
    not taken as the id: an authentication dependency's string is often the credential."""
    if isinstance(user, (str, bytes)):
        raise InvalidRecordError(
            "actor",
            "a dependency's text answer is not taken as the actor (it may be a credential): "
            "return a user object or a mapping",
        )
    return Actor.of(user)


def audited(dependency: Callable[..., Any]) -> Callable[..., Any]:
    """A dependency resolving ``dependency`` and naming its answer the audit actor (see the
    module). An answer that names no valid actor is logged and left out; it never fails the
    request."""
    try:
        from fastapi import Depends
    except ImportError:
        raise MissingDependencyError("auditwire.integrations.fastapi", "fastapi") from None

    def audit_actor(user: Any = Depends(dependency)) -> Any:  # noqa: B008  # FastAPI's idiom
        context = current()
        if context is not None:
            try:
                actor = actor_of(user)
            except InvalidRecordError:
                logger.exception("auditwire: the dependency's answer names no valid actor")
                actor = None
            if actor is not None:
                context.set_actor(actor)
        return user

    return audit_actor
