"""The OpenAPI description is valid, matches the routes, and a schema-driven run over it
finds no server error."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.routing import Mount

from auditwire import Actor, AuditLog, Target
from auditwire.listing.openapi import openapi_document
from auditwire.web import audit_log_routes

PREFIX = "/t/{tenant}/api/v1/admin"


class Admin(AuthenticationBackend):
    """An admin of whichever tenant the URL names (``/t/<tenant>/...``), so generated tenants —
    NUL, oversize, unicode — reach the routes rather than stopping at the tenant rule."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser]:
        parts = conn.url.path.split("/")
        claim = unquote(parts[2]) if len(parts) > 2 and parts[1] == "t" else "acme"
        return AuthCredentials(["admin", f"tenant:{claim}"]), SimpleUser("admin")


def build_app(path: Path) -> Starlette:
    log = AuditLog(f"sqlite:///{path}")
    for n in range(40):
        log.record(
            ["login", "login_failed", "user.invited"][n % 3],
            actor=Actor(id=f"u{n % 4}", email=f"u{n % 4}@acme.test"),
            target=Target("user", f"t{n}"),
            ip_address="203.0.113.9",
            tenant="acme",
        )
    return Starlette(
        routes=[Mount(PREFIX, routes=audit_log_routes(log))],
        middleware=[Middleware(AuthenticationMiddleware, backend=Admin())],
    )


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Starlette:
    return build_app(tmp_path_factory.mktemp("openapi") / "audit.db")


def test_the_description_lists_every_filter_of_both_products() -> None:
    document = openapi_document(PREFIX)
    listed = {p["name"] for p in document["paths"][f"{PREFIX}/audit-logs"]["get"]["parameters"]}
    assert {"from", "to", "users", "log_types", "log_events"} <= listed
    assert {
        "action",
        "category",
        "actorId",
        "targetId",
        "outcome",
        "startDate",
        "endDate",
    } <= listed
    assert {"page", "per_page", "cursor", "tenant"} <= listed


def test_no_server_errors(app: Starlette) -> None:
    """Every operation, with generated parameters and bodies: never a 5xx."""
    schema = schemathesis.openapi.from_asgi(
        f"{PREFIX.replace('{tenant}', 'acme')}/openapi.json", app
    )
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) == 5

    for operation in operations:

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: Case[Any]) -> None:
            if "tenant" in (case.path_parameters or {}) and case.path_parameters["tenant"] == "":
                case.path_parameters["tenant"] = "acme"  # an empty segment routes nowhere
            response = case.call()
            assert response.status_code < 500, (case.path, case.query, response.text[:300])
            assert response.status_code in {200, 400, 403, 404}, (case.path, response.status_code)

        check()
