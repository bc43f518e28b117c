"""Doors for the libraries an application already uses: Django, Flask, FastAPI, logging,
structlog and OpenTelemetry. They build on the middlewares (:mod:`auditwire.asgi`,
:mod:`auditwire.wsgi`).

One module per library integrated, each importing its library only when used:
:mod:`~auditwire.integrations.django` (the Django middleware),
:mod:`~auditwire.integrations.flask` (the Flask extension),
:mod:`~auditwire.integrations.fastapi` (the actor from an auth dependency),
:mod:`~auditwire.integrations.logging`
(stdlib logging), :mod:`~auditwire.integrations.structlog`, :mod:`~auditwire.integrations.otel`;
:mod:`~auditwire.integrations.log_calls` is what the two logging routes share.
"""

from __future__ import annotations

__all__: list[str] = []
