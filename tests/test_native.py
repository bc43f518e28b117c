"""The native encoder against the pure path, which defines every byte it writes.

``make test`` installs the extension (``native/``), so these tests run it; they fail, rather
than skip, where it is missing.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, make_dataclass, replace
from hashlib import sha256
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import auditwire._native as native_module
from auditwire import AuditRecord, RequestInfo
from auditwire._ids import ID_PATTERN, spell
from auditwire._native import NATIVE
from auditwire.canonical import canonical_json
from auditwire.catalog import EventCatalog
from auditwire.ecs import NATIVE_DOCUMENTS, classification, to_ecs
from auditwire.seal import _DOMAIN, ZERO, Chain, record_digest
from auditwire.stores.elasticsearch import ElasticsearchStore
from tests.records import full_record, records

writers = st.from_regex(r"p[0-9]{1,7}-[0-9a-f]{16}", fullmatch=True)
heads = st.just(ZERO) | st.text("0123456789abcdef", min_size=64, max_size=64)
#: Text that exercises every escape, at every offset of the eight-byte scan.
awkward_texts = st.text(
    st.sampled_from(['"', "\\", "\b", "\f", "\n", "\r", "\t", "\x01", "\x1f", "\x7f", "é", "€"])
    | st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=120,
)


def native() -> Any:
    assert NATIVE is not None, "auditwire-native is not installed: `make` installs native/"
    return NATIVE


def without_metadata(record: AuditRecord) -> AuditRecord:
    return replace(record, metadata={})


def pure_canonical(record: AuditRecord, origin: str, writer: str, seq: int, prev: str) -> bytes:
    api = record.to_api()
    api["integrity"] = {"origin": origin, "writer": writer, "seq": seq, "prev": prev}
    return canonical_json(api)


def pure_entry(record: AuditRecord, index: str, catalog: Any = None) -> bytes:
    action = {"create": {"_index": index, "_id": record.id}}
    return orjson.dumps(action) + b"\n" + orjson.dumps(to_ecs(record, catalog))


@settings(max_examples=400)
@given(records(), st.text(min_size=1, max_size=20), writers, st.integers(1, 2**62), heads)
def test_canonical_bytes_and_digest_are_the_pure_paths(
    record: AuditRecord, origin: str, writer: str, seq: int, prev: str
) -> None:
    record = without_metadata(record)
    expected = pure_canonical(record, origin, writer, seq, prev)
    assert native().canonical_record(record, origin, writer, seq, prev) == expected
    digest = native().seal_digest(_DOMAIN, record, origin, writer, seq, prev)
    assert digest == sha256(_DOMAIN + expected).hexdigest()


@settings(max_examples=400)
@given(records(), writers, st.integers(1, 2**62), heads)
def test_entry_is_the_pure_paths(record: AuditRecord, writer: str, seq: int, prev: str) -> None:
    sealed = Chain("auditwire", writer).seal([without_metadata(record)])[0]
    assert sealed.integrity is not None
    sealed = replace(sealed, integrity=replace(sealed.integrity, seq=seq, prev=prev))
    category, kind = classification(sealed, EventCatalog.default())
    assert NATIVE_DOCUMENTS is not None
    assert NATIVE_DOCUMENTS.entry(sealed, "audit-2026.12", category, kind) == pure_entry(
        sealed, "audit-2026.12", EventCatalog.default()
    )


@settings(max_examples=300)
@given(awkward_texts, awkward_texts, st.floats(0, 1e9, allow_nan=False).map(lambda f: round(f, 3)))
def test_escapes_and_numbers_are_written_as_the_pure_path_writes_them(
    message: str, path: str, duration: float
) -> None:
    record = full_record(
        metadata={},
        message=message or None,
        user_agent=message[:40] or None,
        request=RequestInfo(method="GET", path=path or None, status=200, duration_ms=duration),
    )
    assert native().canonical_record(record, "o", "w", 1, ZERO) == pure_canonical(
        record, "o", "w", 1, ZERO
    )
    assert NATIVE_DOCUMENTS is not None
    classes = classification(record, None)
    assert NATIVE_DOCUMENTS.entry(record, "i", *classes) == pure_entry(record, "i")


@given(records())
def test_what_it_does_not_cover_is_declined_not_guessed(record: AuditRecord) -> None:
    """Metadata is the pure path's (floats below 1e-4 and integers beyond 64 bits among it
    need its care); declining is what sends it there."""
    record = replace(record, metadata={"k": 1})
    assert native().canonical_record(record, "o", "w", 1, ZERO) is None
    assert native().seal_digest(_DOMAIN, record, "o", "w", 1, ZERO) is None
    assert NATIVE_DOCUMENTS is not None
    assert NATIVE_DOCUMENTS.entry(record, "i", ("iam",), ("info",)) is None
    assert NATIVE_DOCUMENTS.entry(without_metadata(record), "i", ["iam"], ("info",)) is None


@given(st.integers(0, 2**48 - 1), st.integers(0, 2**80 - 1))
def test_an_id_is_spelled_as_the_pure_path_spells_it(ms: int, rand: int) -> None:
    spelled = native().record_id(ms, rand)
    assert spelled == spell(ms, rand)
    assert ID_PATTERN.match(spelled)


def test_an_id_with_more_than_80_random_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="80 bits"):
        native().record_id(0, 2**80)


def test_a_chain_seals_the_same_with_and_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = [full_record(metadata={}, message=f"m{n}") for n in range(5)]
    batch[2] = full_record()  # with metadata: the pure path, mid-chain
    natively = Chain("auditwire", "p1-0123456789abcdef").seal(batch)
    monkeypatch.setattr("auditwire.seal._native_digest", None)
    purely = Chain("auditwire", "p1-0123456789abcdef").seal(batch)
    assert natively == purely
    assert all(record_digest(r) == r.integrity.hash for r in natively)  # type: ignore[union-attr]


def test_the_store_encodes_the_same_with_and_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    store = ElasticsearchStore("http://127.0.0.1:9")
    batch = [*Chain("auditwire").seal([full_record(metadata={}), full_record()])]
    natively = [store.encode(record) for record in batch]
    monkeypatch.setattr("auditwire.stores.elasticsearch.NATIVE_DOCUMENTS", None)
    assert natively == [store.encode(record) for record in batch]


def test_classes_it_cannot_read_leave_the_pure_path(caplog: pytest.LogCaptureFixture) -> None:
    """A class whose fields differ from the extension's, or are not slots, is refused at
    import with a warning, never half read."""

    @dataclass(frozen=True)
    class Unslotted:  # the record's field names, kept in a __dict__
        action: str

    # The same names and fields as the record's classes, in a __dict__ rather than slots.
    lookalikes = tuple(make_dataclass(name, fields) for name, fields in native().FIELDS.items())
    with caplog.at_level(logging.WARNING, logger="auditwire"):
        assert native_module._bind((Unslotted,)) is None
        assert native_module._bind(lookalikes) is None
    assert "reads other record fields" in caplog.text
    assert "cannot read the record" in caplog.text


def test_it_can_be_turned_off_and_another_version_is_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AUDITWIRE_NATIVE", "0")
    assert native_module._load() is None
    monkeypatch.delenv("AUDITWIRE_NATIVE")
    assert native_module._load() is native()
    monkeypatch.setattr(importlib.import_module("auditwire_native"), "__version__", "0.0.1")
    with caplog.at_level(logging.WARNING, logger="auditwire"):
        assert native_module._load() is None
    assert "auditwire-native 0.0.1 is installed" in caplog.text
