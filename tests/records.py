"""Record factories shared by the tests: hand-made examples and a Hypothesis strategy."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import jsonschema
from hypothesis import strategies as st

from auditwire import (
    Actor,
    AuditLog,
    AuditQuery,
    AuditRecord,
    DeviceInfo,
    RequestInfo,
    SQLiteStore,
    Target,
    TraceInfo,
    record_schema,
)

#: The shipped JSON Schema, compiled once (validating through ``jsonschema.validate`` re-checks
#: the schema on every call).
VALIDATOR = jsonschema.Draft202012Validator(
    record_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)

T0 = datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)


def full_record(**changes: Any) -> AuditRecord:
    """A record with every part filled in."""
    fields: dict[str, Any] = {
        "action": "user_created",
        "category": "user_management",
        "actor": Actor(type="user", id="123", email="admin@example.com", name="Ada Admin"),
        "target": Target(type="user", id="456", email="newuser@example.com"),
        "outcome": "success",
        "ip_address": "203.0.113.45",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0",
        "metadata": {"roles_assigned": ["developer"], "nested": {"n": 1.5, "ok": True}},
        "timestamp": T0,
        "message": "admin@example.com created user newuser@example.com",
        "tenant": "acme-corp",
        "request": RequestInfo(
            id="req-1",
            method="POST",
            route="/t/{tenant}/users",
            path="/t/acme-corp/users",
            status=201,
            duration_ms=12.345,
            peer_ip="10.0.0.5",
        ),
        "trace": TraceInfo("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"),
        "device": DeviceInfo(
            id="dev-1", browser="Firefox", browser_version="121.0", os="Linux", device="Other"
        ),
    }
    fields.update(changes)
    return AuditRecord(**fields)


names = st.from_regex(r"[a-z][a-z0-9_.]{0,20}", fullmatch=True)
texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)
optional_texts = st.none() | texts
_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | texts
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)
_ip = st.none() | st.ip_addresses().map(str)
_hex = st.sampled_from("0123456789abcdef")
actors = st.builds(
    Actor,
    type=st.sampled_from(["user", "agent", "system"]),
    id=optional_texts,
    email=optional_texts,
    name=optional_texts,
)
targets = st.builds(
    Target, type=names, id=optional_texts, email=optional_texts, name=optional_texts
)
#: Trace parts (OpenTelemetry ids in hex).
traces = st.builds(
    TraceInfo,
    trace_id=st.text(_hex, min_size=32, max_size=32),
    span_id=st.none() | st.text(_hex, min_size=16, max_size=16),
)


@st.composite
def records(draw: st.DrawFn) -> AuditRecord:
    """Arbitrary valid records, every optional part sometimes present, sometimes not."""
    request = draw(
        st.none()
        | st.builds(
            RequestInfo,
            id=optional_texts,
            method=st.none() | st.sampled_from(["GET", "POST", "DELETE"]),
            route=optional_texts,
            path=optional_texts,
            status=st.none() | st.integers(100, 599),
            duration_ms=st.none() | st.floats(0, 1e6, allow_nan=False).map(lambda f: round(f, 3)),
            peer_ip=_ip,
        )
    )
    trace = draw(st.none() | traces)
    return AuditRecord(
        action=draw(names),
        category=draw(names),
        actor=draw(actors),
        target=draw(st.none() | targets),
        outcome=draw(st.sampled_from(["success", "failure", "error"])),
        ip_address=draw(_ip),
        user_agent=draw(optional_texts),
        metadata=draw(st.dictionaries(names, json_values, max_size=4)),
        timestamp=T0 + timedelta(microseconds=draw(st.integers(0, 10**13))),
        message=draw(optional_texts),
        tenant=draw(optional_texts),
        request=request,
        trace=trace,
        device=draw(
            st.none()
            | st.builds(DeviceInfo, id=optional_texts, browser=optional_texts, os=optional_texts)
        ),
    )


def written(log: AuditLog) -> list[AuditRecord]:
    """Every record a SQLite-backed log holds once its writer is flushed, newest first, each
    checked against the shipped schema."""
    assert log.flush(timeout=10)
    assert isinstance(log.store, SQLiteStore)
    found = log.store.search(AuditQuery(limit=1000))
    for record in found:
        VALIDATOR.validate(record.to_api())
    return found
