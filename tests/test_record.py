from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditwire import Actor, AuditRecord, InvalidRecordError, RequestInfo, Target
from auditwire._time import format_timestamp, parse_timestamp
from auditwire.record import MAX_METADATA_BYTES
from tests.records import T0, VALIDATOR, full_record, records


def test_api_json_has_the_identity_product_shape_plus_extras() -> None:
    data = full_record().to_api()
    assert list(data)[:10] == [
        "id",
        "action",
        "category",
        "actor",
        "target",
        "outcome",
        "ipAddress",
        "userAgent",
        "metadata",
        "timestamp",
    ]
    assert data["actor"] == {
        "type": "user",
        "id": "123",
        "email": "admin@example.com",
        "name": "Ada Admin",
    }
    assert data["timestamp"] == "2024-01-15T10:30:00.000Z"
    assert data["request"]["durationMs"] == 12.345
    assert data["trace"] == {
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
        "spanId": "00f067aa0ba902b7",
    }
    VALIDATOR.validate(data)


@given(records())
def test_every_record_is_valid_against_the_shipped_schema_and_round_trips(
    record: AuditRecord,
) -> None:
    data = record.to_api()
    VALIDATOR.validate(data)
    assert AuditRecord.from_api(json.loads(json.dumps(data))) == record


def test_ids_are_prefixed_time_sortable_and_unique() -> None:
    made = [AuditRecord(action="login", category="authentication").id for _ in range(2000)]
    assert len(set(made)) == len(made)
    assert made == sorted(made)
    assert all(i.startswith("log_") and len(i) == 30 for i in made)


def test_timestamps_are_utc_with_millisecond_precision() -> None:
    plus_two = timezone(timedelta(hours=2))
    record = AuditRecord(
        action="login",
        category="authentication",
        timestamp=datetime(2024, 1, 15, 12, 30, 0, 123456, tzinfo=plus_two),
    )
    assert record.timestamp == datetime(2024, 1, 15, 10, 30, 0, 123000, tzinfo=timezone.utc)
    assert format_timestamp(record.timestamp) == "2024-01-15T10:30:00.123Z"
    assert parse_timestamp("2024-01-15T12:30:00.123+02:00") == record.timestamp


@given(st.datetimes(timezones=st.just(timezone.utc)), st.datetimes(timezones=st.just(timezone.utc)))
def test_timestamps_format_as_isoformat_writes_them(first: datetime, second: datetime) -> None:
    """The formatter reuses the text of the last second it wrote: any two times in turn
    (same second or not, either side of 1970) read as ``isoformat`` writes them."""
    for value in (first, second, first):
        value = value.replace(microsecond=value.microsecond // 1000 * 1000)
        expected = value.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"
        assert format_timestamp(value) == expected


def test_actor_and_target_ids_are_strings_and_ips_canonical() -> None:
    record = AuditRecord(
        action="x",
        category="y",
        actor=Actor(id=123),  # type: ignore[arg-type]
        target=Target("user", id=456),  # type: ignore[arg-type]
        ip_address="2001:DB8:0:0:0:0:0:1",
    )
    assert (record.actor.id, record.target and record.target.id) == ("123", "456")
    assert record.ip_address == "2001:db8::1"


def test_records_are_immutable_and_metadata_is_a_private_copy() -> None:
    metadata: dict[str, Any] = {"roles": ["a"]}
    record = AuditRecord(action="x", category="y", metadata=metadata)
    metadata["roles"].append("b")
    assert record.metadata == {"roles": ["a"]}
    with pytest.raises(FrozenInstanceError):
        record.action = "other"  # type: ignore[misc]


def test_secret_metadata_is_masked_when_the_record_is_built() -> None:
    record = AuditRecord(
        action="api_key.created",
        category="api_key",
        metadata={"apiKey": "sk_live_abcdefgh1337", "password": "hunter2", "note": "fine"},
    )
    assert record.metadata == {"apiKey": "***1337", "password": "[REDACTED]", "note": "fine"}


class Weird:
    pass


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        pytest.param({"action": None}, "action", "required", id="missing-action"),
        pytest.param({"action": ""}, "action", "empty", id="empty-action"),
        pytest.param({"action": "drop table;"}, "action", "letters", id="action-syntax"),
        pytest.param({"action": "a" * 129}, "action", "limit is 128", id="oversize-action"),
        pytest.param({"outcome": "ok"}, "outcome", "'ok'", id="bad-outcome"),
        pytest.param({"metadata": {"x": Weird()}}, "metadata.x", "Weird", id="non-json-metadata"),
        pytest.param({"metadata": {"x": float("nan")}}, "metadata.x", "finite", id="nan-metadata"),
        pytest.param({"metadata": {1: "a"}}, "metadata", "non-string key", id="int-key"),
        pytest.param({"metadata": [1]}, "metadata", "mapping", id="metadata-not-mapping"),
        pytest.param(
            {"metadata": {"blob": "x" * MAX_METADATA_BYTES}},
            "metadata",
            "bytes",
            id="oversize-meta",
        ),
        pytest.param({"ip_address": "999.1.1.1"}, "ipAddress", "not an IPv4", id="bad-ip"),
        pytest.param({"user_agent": "u" * 5000}, "userAgent", "limit", id="oversize-ua"),
        pytest.param({"tenant": "a\x00b"}, "tenant", "NUL", id="nul-in-tenant"),
        pytest.param({"actor": None}, "actor", "required", id="no-actor"),
        pytest.param({"actor": {"id": "1"}}, "actor", "Actor", id="actor-as-dict"),
        pytest.param(
            {"timestamp": datetime(2024, 1, 1)}, "timestamp", "timezone-aware", id="naive-time"
        ),
        pytest.param({"id": "123"}, "id", "not an auditwire record id", id="bad-id"),
    ],
)
def test_invalid_records_are_refused_with_the_field_named(
    fields: dict[str, Any], field: str, fragment: str
) -> None:
    base: dict[str, Any] = {"action": "login", "category": "authentication"}
    with pytest.raises(InvalidRecordError) as caught:
        AuditRecord(**{**base, **fields})
    assert caught.value.field == field
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        pytest.param(lambda: Actor(type="robot"), "actor.type", id="actor-type"),  # type: ignore[arg-type]
        pytest.param(lambda: Target(type=""), "target.type", id="target-type"),
        pytest.param(lambda: RequestInfo(status=42), "request.status", id="status"),
        pytest.param(lambda: RequestInfo(method="get it"), "request.method", id="method"),
        pytest.param(lambda: RequestInfo(duration_ms=-1), "request.duration_ms", id="duration"),
        pytest.param(lambda: RequestInfo(peer_ip="nope"), "request.peer_ip", id="peer-ip"),
    ],
)
def test_invalid_parts_are_refused(build: Any, field: str) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        build()
    assert caught.value.field == field


def test_from_api_names_missing_and_malformed_fields() -> None:
    good = full_record().to_api()
    for key in ("id", "timestamp"):
        with pytest.raises(InvalidRecordError, match=key):
            AuditRecord.from_api({k: v for k, v in good.items() if k != key})
    with pytest.raises(InvalidRecordError, match="timestamp"):
        AuditRecord.from_api({**good, "timestamp": "yesterday"})
    with pytest.raises(InvalidRecordError, match="time zone"):
        AuditRecord.from_api({**good, "timestamp": "2024-01-15T10:30:00"})
    with pytest.raises(InvalidRecordError, match="actor"):
        AuditRecord.from_api({**good, "actor": "admin"})


def test_empty_parts_collapse_to_none() -> None:
    record = AuditRecord(action="x", category="y", request=RequestInfo(), timestamp=T0)
    assert record.request is None


def test_with_changes_makes_a_validated_copy() -> None:
    record = full_record()
    failed = record.with_changes(outcome="failure")
    assert (failed.outcome, failed.id, record.outcome) == ("failure", record.id, "success")
    with pytest.raises(InvalidRecordError, match="outcome"):
        record.with_changes(outcome="maybe")
