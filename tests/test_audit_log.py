from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from auditwire import (
    Actor,
    AuditLog,
    EventCatalog,
    InvalidQueryError,
    InvalidRecordError,
    RecordNotFoundError,
    SQLiteStore,
    StoreError,
    Target,
    UnknownActionError,
)
from auditwire.stores.jsonl import JsonLinesSink
from tests.records import VALIDATOR


def test_record_fills_category_and_message_from_the_catalog(log: AuditLog) -> None:
    record = log.record(
        "api_key.rotated",
        actor={"type": "user", "id": 7, "email": "ops@acme.test"},
        target={"type": "api_key", "id": "key_1", "name": "Deploy"},
        metadata={"apiKey": "sk_live_0123456789ab1337"},
        ip_address="203.0.113.45",
    )
    assert record.category == "api_key"
    assert record.message == "The API key Deploy ending with ***1337 was rotated"
    assert record.actor == Actor(type="user", id="7", email="ops@acme.test")
    assert log.get(record.id) == record


def test_unknown_actions_are_filed_by_their_prefix_and_strict_refuses_them(
    tmp_path: Path,
) -> None:
    lenient = AuditLog(f"sqlite:///{tmp_path}/a.db")
    assert lenient.record("invoice.voided", category="billing").category == "billing"
    assert lenient.record("invoice.voided").category == "invoice"
    assert lenient.record("made_up").category == "other"
    strict = AuditLog(f"sqlite:///{tmp_path}/b.db", strict=True)
    with pytest.raises(UnknownActionError):
        strict.record("invoice.voided", category="billing")
    with pytest.raises(ValueError, match="strict=True"):
        AuditLog(f"sqlite:///{tmp_path}/c.db", catalog=EventCatalog(), strict=True)


def test_a_category_contradicting_the_catalog_is_refused(log: AuditLog) -> None:
    with pytest.raises(InvalidRecordError, match="contradicts the catalog"):
        log.record("login", category="billing")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"action": ""}, id="missing-action"),
        pytest.param({"action": "login", "outcome": "maybe"}, id="bad-outcome"),
        pytest.param({"action": "login", "metadata": {"when": object()}}, id="non-json"),
        pytest.param({"action": "login", "metadata": ["x"]}, id="metadata-list"),
        pytest.param({"action": "login", "user_agent": "x" * 10_000}, id="oversize-ua"),
        pytest.param({"action": "login", "actor": {"type": "robot"}}, id="bad-actor"),
        pytest.param({"action": "login", "ip_address": "localhost"}, id="bad-ip"),
    ],
)
def test_invalid_calls_raise_and_write_nothing(log: AuditLog, fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidRecordError):
        log.record(**fields)
    assert isinstance(log.store, SQLiteStore)
    assert log.store.count() == 0


def test_configured_keys_are_masked_too(tmp_path: Path) -> None:
    log = AuditLog(f"sqlite:///{tmp_path}/a.db", secret_keys=["iban"], hidden_keys=["dob"])
    record = log.record(
        "settings_changed", metadata={"iban": "DE89370400440532013000", "dob": "1990-01-01"}
    )
    assert record.metadata == {"iban": "***3000", "dob": "[REDACTED]"}


def test_a_tenant_bound_log_reads_only_its_tenant(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/a.db"
    acme, globex = AuditLog(url, tenant="acme"), AuditLog(url, tenant="globex")
    mine = acme.record("login", actor=Actor(email="a@acme.test"))
    theirs = globex.record("login", actor=Actor(email="g@globex.test"))
    assert acme.search() == [mine]
    assert globex.search() == [theirs]
    with pytest.raises(RecordNotFoundError):
        acme.get(theirs.id)
    with pytest.raises(InvalidQueryError, match="tenant"):
        acme.search(tenant="globex")


def test_explicit_timestamps_and_search_keywords(log: AuditLog) -> None:
    when = datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)
    log.record("login_failed", outcome="failure", timestamp=when, actor=Actor(id="u1"))
    log.record("login", timestamp=when, actor=Actor(id="u1"))
    found = log.search(actions=["login_failed"], outcomes=["failure"])
    assert [(r.action, r.timestamp) for r in found] == [("login_failed", when)]
    with pytest.raises(InvalidQueryError, match="outcomes"):
        log.search(outcomes=["meh"])


def test_jsonl_sink_writes_schema_valid_lines_and_is_write_only() -> None:
    stream = io.StringIO()
    log = AuditLog(JsonLinesSink(stream))
    record = log.record(
        "user.invited",
        actor=Actor(email="boss@acme.test"),
        target=Target("user", email="new@acme.test"),
        metadata={"note": "héllo"},
    )
    line = stream.getvalue().strip()
    assert "héllo" in line
    data = json.loads(line)
    VALIDATOR.validate(data)
    assert data == record.to_api()
    with pytest.raises(StoreError, match="write-only"):
        log.search()
    log.close()


def test_jsonl_sink_appends_to_a_file(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    with AuditLog(f"jsonl:///{path}") as log:
        log.record("login")
        log.record("logout")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["login", "logout"]


def test_default_store_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDITWIRE_STORE", f"sqlite:///{tmp_path}/env.db")
    log = AuditLog()
    assert isinstance(log.store, SQLiteStore)
    assert log.store.path == f"{tmp_path}/env.db"
    log.close()


class _OrmUser:
    """What an ORM model of users offers (an SQLAlchemy or Peewee class, say)."""

    def __init__(self, user_id: int, email: str, username: str) -> None:
        self.id, self.email, self.username = user_id, email, username


class _OwnActor:
    def auditwire_actor(self) -> dict[str, str]:
        return {"type": "agent", "id": "key_ci"}


@pytest.mark.parametrize(
    ("actor", "expected"),
    [
        ("usr_1", Actor(type="user", id="usr_1")),
        (42, Actor(type="user", id="42")),
        (_OrmUser(7, "ann@acme.test", "ann"), Actor(id="7", email="ann@acme.test", name="ann")),
        (_OwnActor(), Actor(type="agent", id="key_ci")),
        ({"type": "system", "id": "cron"}, Actor(type="system", id="cron")),
        (None, Actor.system()),
    ],
    ids=["id", "integer id", "orm object", "protocol", "mapping", "nobody"],
)
def test_whatever_names_the_actor_makes_a_record(
    log: AuditLog, actor: object, expected: Actor
) -> None:
    assert log.record("login", actor=actor).actor == expected


def test_a_user_object_s_unstorable_fields_are_left_out_not_cut(log: AuditLog) -> None:
    user = _OrmUser(7, "x" * 400 + "@acme.test", "ann\x00")
    assert log.record("login", actor=user).actor == Actor(id="7")
    for nobody in (True, 1.5, object(), _OrmUser(None, "", "")):  # type: ignore[arg-type]
        with pytest.raises(InvalidRecordError, match="names no user"):
            log.record("login", actor=nobody)
