"""``auditwire verify`` and ``auditwire keys``, keyrings from files and the environment,
Ed25519 checkpoints an auditor verifies with the public key alone, and the fast ECS reading
verification relies on."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from auditwire import AuditLog, AuditRecord, SQLiteStore
from auditwire._time import utcnow
from auditwire.cli import main
from auditwire.ecs import api_from_ecs, from_ecs, to_ecs
from auditwire.integrity import Integrity, IntegrityKey, Keyring, KeyringError
from auditwire.integrity.verify import Report, verify
from auditwire.record import PART_TYPES, REFERENCE_TO_API
from auditwire.seal import Chain, record_digest
from tests.records import records


def _sealed_log(path: Path, keyring: Keyring, copy: Path | None = None) -> None:
    log = AuditLog(f"sqlite:///{path}", integrity=Integrity(keyring=keyring, copy=copy))
    log.write([log.build("user.login", tenant="acme"), log.build("user.logout", tenant="globex")])
    log.close()


def _keyring_file(tmp_path: Path, *extra: str) -> Path:
    out = io.StringIO()
    assert main(["keys", "new", "--id", "k1", *extra], out) == 0
    path = tmp_path / "keyring.json"
    path.write_text(out.getvalue())
    return path


def test_verify_exits_0_on_a_sound_log_and_1_on_a_tampered_one(tmp_path: Path) -> None:
    ring_file = _keyring_file(tmp_path)
    db, copy = tmp_path / "audit.db", tmp_path / "copy.jsonl"
    _sealed_log(db, Keyring.load(ring_file), copy)
    store = f"sqlite:///{db}"
    out = io.StringIO()
    assert (
        main(["verify", "--store", store, "--keyring", str(ring_file), "--copy", str(copy)], out)
        == 0
    )
    assert out.getvalue().splitlines()[-1] == "verified: 4 records in 1 chains"

    conn = sqlite3.connect(db)
    conn.executescript("DROP TRIGGER audit_records_no_update;")
    conn.execute("UPDATE audit_records SET record = replace(record, 'acme', 'acne')")
    conn.commit()
    out = io.StringIO()
    code = main(["verify", "--store", store, "--keyring", str(ring_file), "--format", "json"], out)
    assert code == 1
    report = json.loads(out.getvalue())
    assert report["ok"] is False
    (writer,) = report["writers"]
    assert [(f["verdict"], f["seq"], f["severity"]) for f in writer["findings"]] == [
        ("edited", 2, "error")
    ]


def test_verify_by_tenant_and_time(tmp_path: Path) -> None:
    ring = Keyring([IntegrityKey.hmac("x" * 32, "k1")])
    db = tmp_path / "audit.db"
    _sealed_log(db, ring)
    report = verify(SQLiteStore(db), keyring=ring, tenant="acme")
    assert report.ok and len(report.writers) == 1
    assert verify(SQLiteStore(db), keyring=ring, tenant="nobody").writers == []
    later = verify(SQLiteStore(db), keyring=ring, since=utcnow() + timedelta(hours=1))
    assert later.ok and later.records == 0
    bounded = verify(SQLiteStore(db), keyring=ring, since=utcnow() - timedelta(hours=1))
    assert bounded.ok and bounded.records == 4


def test_verify_refuses_bad_options_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "audit.db"
    _sealed_log(db, Keyring([IntegrityKey.hmac("x" * 32, "k1")]))
    assert main(["verify", "--store", f"sqlite:///{db}", "--since", "yesterday"]) == 2
    assert "--since" in capsys.readouterr().err
    bad = tmp_path / "ring.json"
    bad.write_text('{"keys": [{"id": "k", "secret": "c2hvcnQ="}]}')
    assert main(["verify", "--store", f"sqlite:///{db}", "--keyring", str(bad)]) == 2
    assert "16 bytes or more" in capsys.readouterr().err


def test_without_a_keyring_links_are_checked_and_a_warning_says_what_is_not(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    _sealed_log(db, Keyring([IntegrityKey.hmac("x" * 32, "k1")]))
    out = io.StringIO()
    assert (
        main(
            ["verify", "--store", f"sqlite:///{db}"],
            out,
        )
        == 0
    )
    assert out.getvalue().startswith("warning: no keyring")


def test_keyrings_from_the_environment() -> None:
    assert Keyring.from_env({}) is None
    named = Keyring.from_env({"AUDITWIRE_INTEGRITY_KEY": "2026:" + "s" * 20})
    assert named is not None and [k.id for k in named.keys] == ["2026"]
    bare = Keyring.from_env({"AUDITWIRE_INTEGRITY_KEY": "s" * 20})
    assert bare is not None and bare.keys[0].id.startswith("hmac-")
    with pytest.raises(KeyringError, match="16 bytes"):
        Keyring.from_env({"AUDITWIRE_INTEGRITY_KEY": "short"})


def test_ed25519_checkpoints_verify_with_the_public_key_alone(tmp_path: Path) -> None:
    ring_file = _keyring_file(tmp_path, "--algorithm", "ed25519")
    db = tmp_path / "audit.db"
    _sealed_log(db, Keyring.load(ring_file))
    public = io.StringIO()
    assert main(["keys", "public", str(ring_file)], public) == 0
    entry = json.loads(public.getvalue())["keys"][0]
    assert set(entry) == {"id", "algorithm", "public"}
    auditor = Keyring.from_json(json.loads(public.getvalue()))
    assert not auditor.keys[0].can_sign
    report = verify(SQLiteStore(db), keyring=auditor)
    assert report.ok, report.text()
    (tmp_path / "other").mkdir()
    other = Keyring.load(_keyring_file(tmp_path / "other", "--algorithm", "ed25519"))
    assert {
        f.verdict for w in verify(SQLiteStore(db), keyring=other).writers for f in w.findings
    } == {"bad_signature"}


def test_a_key_period_must_be_in_order() -> None:
    now = utcnow()
    with pytest.raises(KeyringError, match="after valid_from"):
        IntegrityKey.hmac("x" * 32, "k", valid_from=now, valid_until=now)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(record=records())
def test_the_fast_ecs_reading_gives_the_api_form(record: AuditRecord) -> None:
    """What verification reads from a cluster is what the validating reader gives."""
    (sealed,) = Chain("auditwire").seal([record])
    for each in (record, sealed):
        document = json.loads(json.dumps(to_ecs(each)))
        assert api_from_ecs(document) == from_ecs(document).to_api() == each.to_api()
    assert sealed.integrity is not None and record_digest(sealed) == sealed.integrity.hash
    assert sealed.with_changes(integrity=None) == record


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(record=records())
def test_the_compiled_api_form_is_the_defined_one(record: AuditRecord) -> None:
    """``to_api`` runs as straight-line code written from the field tables; the classes'
    own loops over those tables define it."""
    (sealed,) = Chain("auditwire").seal([record])
    for each in (record, sealed):
        defined = REFERENCE_TO_API[AuditRecord](each)
        assert each.to_api() == defined and list(each.to_api()) == list(defined)
        for name, kind in PART_TYPES.items():
            part = getattr(each, name)
            if part is not None:
                assert part.to_api() == REFERENCE_TO_API[kind](part)


def test_verifying_in_several_processes_finds_what_one_finds(tmp_path: Path) -> None:
    ring = Keyring([IntegrityKey.hmac("x" * 32, "k1")])
    db = tmp_path / "audit.db"
    for _ in range(3):  # three writers
        _sealed_log(db, ring)
    conn = sqlite3.connect(db)
    conn.executescript("DROP TRIGGER audit_records_no_delete;")
    conn.execute("DELETE FROM audit_records WHERE chain_seq = 2 AND rowid < 4")
    conn.commit()
    one = verify(SQLiteStore(db), keyring=ring)
    two = verify(SQLiteStore(db), keyring=ring, workers=2)
    assert not one.ok and one.verdicts() == {"missing"}

    def writers(report: Report) -> list[dict[str, object]]:
        return sorted((w.to_json() for w in report.writers), key=lambda w: str(w["writer"]))

    assert writers(one) == writers(two) and len(writers(two)) == 3
