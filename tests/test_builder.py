"""One record-building path: the trusted build gives exactly the record the validating build
gives, for anything capture can hand it."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditwire import Actor, DeviceInfo, EventCatalog, InvalidRecordError
from auditwire._fastpath import seal_in_place, sealed_copy, trusted_request
from auditwire._time import utc_from_ms
from auditwire.builder import RecordBuilder
from auditwire.capture.user_agent import sanitize
from auditwire.record import AuditRecord, IntegrityInfo, RequestInfo
from auditwire.redaction import Redactor
from tests.records import (
    actors,
    json_values,
    names,
    optional_texts,
    records,
    targets,
    texts,
    traces,
)

CATALOG = EventCatalog.default()
ACTIONS = sorted(event.action for event in CATALOG)
CATEGORIES = CATALOG.categories

#: Metadata keys the redactor masks or hides, beside ordinary ones.
_key = names | st.sampled_from(["apiKey", "token", "password", "pin", "cookie", "secret"])
_canonical_ip = st.ip_addresses().map(lambda a: str(ipaddress.ip_address(a)))


@st.composite
def captured_request(draw: st.DrawFn) -> RequestInfo:
    """A request part as capture makes it: id by its pattern, method, capped NUL-free paths,
    status in range, whole microseconds, canonical peer."""
    return trusted_request(
        draw(st.from_regex(r"[A-Za-z0-9._:\-]{1,128}", fullmatch=True)),
        draw(st.none() | st.from_regex(r"[A-Z]{1,16}", fullmatch=True)),
        draw(st.none() | texts),
        draw(texts),
        draw(st.none() | st.integers(100, 599)),
        draw(st.integers(0, 10**12)) // 1000 / 1000,
        draw(st.none() | _canonical_ip),
    )


@st.composite
def captured(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """An action and what capture hands the builder with it: parts validated when a handler
    set them, values made valid from the request, metadata and tenant from hooks."""
    action = draw(st.sampled_from(ACTIONS) | names)
    event = CATALOG.get(action)
    category = draw(
        st.none()
        | st.sampled_from(CATEGORIES)
        | st.just(event.category if event is not None else "custom")
    )
    fields: dict[str, Any] = {
        "actor": draw(actors),
        "target": draw(st.none() | targets),
        "outcome": draw(st.sampled_from(["success", "failure", "error"])),
        "metadata": draw(st.dictionaries(_key, json_values, max_size=4)),
        "category": category,
        "ip_address": draw(st.none() | _canonical_ip),
        "user_agent": sanitize(draw(optional_texts)),
        # A hook's tenant is not checked before: sometimes too long, or with a NUL.
        "tenant": draw(st.none() | texts | st.just("t" * 300) | st.just("a\x00b")),
        "timestamp": utc_from_ms(draw(st.integers(0, 4 * 10**12))),
        "request": draw(captured_request()),
        "trace": draw(st.none() | traces),
        # The user-agent parser's answers, a device id, or an agent it could not place.
        "device": draw(
            st.none()
            | st.just(DeviceInfo())
            | st.builds(
                DeviceInfo,
                id=optional_texts,
                browser=optional_texts,
                browser_version=optional_texts,
                os=optional_texts,
                device=optional_texts,
            )
        ),
    }
    return action, fields


def _built(build: Any, action: str, fields: dict[str, Any]) -> AuditRecord | str:
    try:
        record: AuditRecord = build(action, **fields)
    except InvalidRecordError as exc:
        return f"refused: {exc.field}"
    return record


def _exactly(record: AuditRecord) -> str:
    """Every field, its type and value, but the id (which each build makes anew): a float
    where an integer was, an empty part where ``None`` was, all show."""
    return repr(record).replace(record.id, "<id>")


@settings(max_examples=400, deadline=None)
@given(captured(), st.none() | st.just("acme"))
def test_the_trusted_build_gives_exactly_the_validated_record(
    case: tuple[str, dict[str, Any]], bound_tenant: str | None
) -> None:
    action, fields = case
    builder = RecordBuilder(CATALOG, Redactor(secret_keys=["pin"]), tenant=bound_tenant)
    validated = _built(builder.build, action, fields)
    trusted = _built(builder.build_trusted, action, fields)
    if isinstance(validated, str) or isinstance(trusted, str):
        assert trusted == validated
        return
    assert _exactly(trusted) == _exactly(validated)
    assert AuditRecord.from_api(trusted.to_api()) == trusted  # and it is a valid record


@settings(max_examples=300, deadline=None)
@given(captured_request())
def test_the_trusted_request_part_is_the_validated_one(request: RequestInfo) -> None:
    values = [getattr(request, attribute) for attribute, _ in RequestInfo.API]
    assert repr(RequestInfo(*values)) == repr(request)


@settings(max_examples=200, deadline=None)
@given(records(), st.integers(1, 2**63 - 1), st.sampled_from(["0" * 64, "ab" * 32]))
def test_sealing_gives_exactly_the_record_replace_gives(
    record: AuditRecord, seq: int, prev: str
) -> None:
    """Both sealing constructors, against the validating ``replace``: every field kept (the id
    too), the seal in place, and a real record (frozen, equal, hashable as one)."""
    digest = "cd" * 32
    integrity = IntegrityInfo(origin="o", writer="p1-w", seq=seq, prev=prev, hash=digest)
    expected = dataclasses.replace(record, integrity=integrity)
    copy = sealed_copy(record, "o", "p1-w", seq, prev, digest)
    assert repr(copy) == repr(expected) and type(copy) is AuditRecord
    assert copy == expected and copy is not record
    fresh = dataclasses.replace(record)
    seal_in_place(fresh, "o", "p1-w", seq, prev, digest)
    assert repr(fresh) == repr(expected) and type(fresh.integrity) is IntegrityInfo
    with pytest.raises(dataclasses.FrozenInstanceError):
        fresh.action = "changed"  # type: ignore[misc]


def test_an_action_outside_the_catalog_takes_the_validating_path() -> None:
    builder = RecordBuilder(CATALOG)

    def build(action: str, category: str | None) -> AuditRecord:
        return builder.build_trusted(
            action,
            actor=Actor(id="u1"),
            target=None,
            outcome="success",
            metadata={},
            category=category,
            ip_address=None,
            user_agent=None,
            tenant=None,
            timestamp=utc_from_ms(0),
            request=RequestInfo(id="r1"),
            trace=None,
            device=None,
        )

    assert build("made.up", None).category == "made"  # filed as build() files it
    with pytest.raises(InvalidRecordError, match="contradicts the catalog"):
        build("login", "billing")
