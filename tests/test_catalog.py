from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditwire import (
    Actor,
    AuditRecord,
    EventCatalog,
    EventDefinition,
    InvalidRecordError,
    Target,
    UnknownActionError,
    render_template,
)
from auditwire._templates import compile_renderer, compile_template, render
from auditwire.cli import main
from tests.ecs_spec import ALLOWED
from tests.records import records

# Every event key of the billing product's Security logs page, by log type.
SECURITY_LOG_EVENTS = {
    "user": [
        "user.signed_up",
        "user.new_device_logged_in",
        "user.deleted",
        "user.invited",
        "user.role_edited",
        "user.password_reset_requested",
        "user.password_edited",
    ],
    "role": ["role.created", "role.updated", "role.deleted"],
    "api_key": ["api_key.created", "api_key.updated", "api_key.deleted", "api_key.rotated"],
    "webhook_endpoint": [
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "webhook_endpoint.deleted",
    ],
    "export": ["export.created"],
    "integration": ["integration.created", "integration.updated", "integration.deleted"],
    "billing_entity": ["billing_entity.created", "billing_entity.updated"],
}
# Every action of the identity product's Audit logs page, by category.
AUDIT_LOG_EVENTS = {
    "authentication": ["login", "logout", "login_failed", "mfa_verified", "password_reset"],
    "authorization": ["permission_check", "access_denied", "role_assigned"],
    "user_management": ["user_created", "user_updated", "user_deleted", "user_blocked"],
    "token_management": ["token_issued", "token_revoked", "token_refreshed"],
    "configuration": ["settings_changed", "webhook_created", "policy_updated"],
}
# The page's templates, verbatim (user.role_edited is disambiguated, see the catalog).
SEED_TEMPLATES = {
    "user.signed_up": "{{email}} joined",
    "user.invited": "{{emailInvitee}} was invited by {{emailInvitor}}",
    "api_key.rotated": "The API key {{apiKeyName}} ending with {{***1337}} was rotated",
    "webhook_endpoint.deleted": "A webhook endpoint {{url}} was deleted",
    "role.created": "{{email}} added a new role {{role_code}}",
    "integration.created": "{{email}} created a new {{integration.name}} integration",
    "billing_entity.updated": "{{email}} updated the billing entity {{billingEntity.name}}",
    "export.created": "{{email}} exported data",
}


def _events_json() -> list[dict[str, Any]]:
    out = io.StringIO()
    assert main(["events", "--json"], out=out) == 0
    data: list[dict[str, Any]] = json.loads(out.getvalue())
    return data


def test_cli_lists_every_event_of_both_pages_with_category_and_template() -> None:
    listed = {e["action"]: e for e in _events_json()}
    for catalog in (SECURITY_LOG_EVENTS, AUDIT_LOG_EVENTS):
        for category, actions in catalog.items():
            for action in actions:
                assert listed[action]["category"] == category, action
                assert listed[action]["template"], action
    for action, template in SEED_TEMPLATES.items():
        assert listed[action]["template"] == template


def test_cli_table_and_category_filter() -> None:
    out = io.StringIO()
    assert main(["events", "--category", "api_key"], out=out) == 0
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == SECURITY_LOG_EVENTS["api_key"]
    assert main(["events", "--category", "nope"], out=io.StringIO()) == 2


def test_ecs_classification_uses_allowed_values_only() -> None:
    for event in EventCatalog.default():
        for category in event.ecs_category:
            assert category in ALLOWED["event.category"], event.action
            for type_ in event.ecs_type:
                assert type_ in ALLOWED["event.category"][category], (event.action, type_)


def _record(action: str, **fields: Any) -> AuditRecord:
    return AuditRecord(action=action, category="x", **fields)


@pytest.mark.parametrize(
    ("action", "fields", "message"),
    [
        pytest.param(
            "user.invited",
            {
                "actor": Actor(email="boss@acme.test"),
                "target": Target("user", email="new@acme.test"),
            },
            "new@acme.test was invited by boss@acme.test",
            id="invited",
        ),
        pytest.param(
            "user.role_edited",
            {
                "actor": Actor(email="boss@acme.test"),
                "target": Target("user", email="bob@acme.test"),
                "metadata": {"role": {"name": "Finance"}},
            },
            "bob@acme.test's role was edited to Finance by boss@acme.test",
            id="role-edited",
        ),
        pytest.param(
            "api_key.rotated",
            {
                "target": Target("api_key", "key_1", name="Prod"),
                "metadata": {"apiKey": "sk_live_abcdefgh1337"},
            },
            "The API key Prod ending with ***1337 was rotated",
            id="api-key-masked",
        ),
        pytest.param(
            "role.created",
            {"actor": Actor(email="a@acme.test"), "metadata": {"role_code": "auditor"}},
            "a@acme.test added a new role auditor",
            id="metadata-first",
        ),
        pytest.param(
            "integration.created",
            {"actor": Actor(email="a@acme.test")},
            "a@acme.test created a new (unknown) integration",
            id="missing-variable",
        ),
        pytest.param(
            "login_failed",
            {"actor": Actor(type="user", email="eve@acme.test")},
            "Failed login for eve@acme.test",
            id="identity-event",
        ),
    ],
)
def test_messages_render_from_the_record(action: str, fields: dict[str, Any], message: str) -> None:
    event = EventCatalog.default().get(action)
    assert event is not None
    assert event.render(_record(action, **fields)) == message


def test_an_api_key_never_renders_whole_even_when_named_by_path() -> None:
    record = _record("x", metadata={"apiKey": "sk_live_abcdefgh1337"})
    assert render_template("{{apiKey}} / {{***1337}}", record) == "***1337 / ***1337"


def test_strict_catalog_refuses_unknown_actions_lenient_accepts() -> None:
    strict = EventCatalog.default(strict=True)
    with pytest.raises(UnknownActionError, match=r"invoice\.voided"):
        strict.resolve("invoice.voided")
    assert EventCatalog.default().resolve("invoice.voided") is None


def test_applications_register_their_own_events() -> None:
    catalog = EventCatalog.default(strict=True)
    event = catalog.register(
        "invoice.voided",
        category="billing",
        template="{{email}} voided invoice {{target.id}}",
        ecs_category=["configuration"],
        ecs_type=["deletion"],
    )
    assert catalog.resolve("invoice.voided") is event
    assert event.render(
        _record("invoice.voided", actor=Actor(email="a@b.c"), target=Target("invoice", "in_1"))
    ) == ("a@b.c voided invoice in_1")
    with pytest.raises(ValueError, match="already registered"):
        catalog.register(EventDefinition("invoice.voided", "billing", "again"))
    with pytest.raises(InvalidRecordError, match="category"):
        catalog.register("no.category")
    with pytest.raises(InvalidRecordError, match="action"):
        catalog.register("bad action", category="x")


_TEMPLATES = sorted(
    {event.template for event in EventCatalog.default()}
    | {"{{***1337}} {{email}} {{url}} {{request.status}} {{tenant}} {{nowhere}} {{outcome}}"}
)


@settings(max_examples=300, deadline=None)
@given(record=records(), template=st.sampled_from(_TEMPLATES), drop_metadata=st.booleans())
def test_the_compiled_renderer_gives_what_rendering_the_parts_gives(
    record: AuditRecord, template: str, drop_metadata: bool
) -> None:
    """Every catalog template and one of every alias kind, compiled to straight-line code,
    against the definition (:func:`render` over the compiled parts)."""
    if drop_metadata:
        record = dataclasses.replace(record, metadata={})
    assert compile_renderer(template)(record) == render(compile_template(template), record)
