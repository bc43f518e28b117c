"""One test per attack on a sealed log, each expecting its own verdict, on SQLite (triggers
dropped), Elasticsearch and OpenSearch (documents overwritten, deleted and added directly).

The scene every test starts from — one writer, its checkpoints in the store and in a copy
kept elsewhere::

    1 start · 2-21 records · 22 checkpoint · 23-42 records · 43 checkpoint · 44-53 records
    · 54 close
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from auditwire import AuditLog, SQLiteStore
from auditwire._ids import new_id
from auditwire._time import utcnow
from auditwire.integrity import Integrity, IntegrityKey, Keyring
from auditwire.integrity.verify import Report, verify
from auditwire.stores.elasticsearch import ElasticsearchStore, OpenSearchStore
from tests.integrity.tamper import (
    ClusterTamper,
    SQLiteTamper,
    Tamper,
    at,
    rechained,
    resealed,
)

SECRET = "correct horse battery staple"
RING = Keyring([IntegrityKey.hmac(SECRET, "k1")])


@dataclass
class Target:
    """A store, a way to open logs over it, and an attacker."""

    store: Any
    open_log: Callable[..., AuditLog]
    tamper: Tamper
    copy: Path

    def verify(self, **options: Any) -> Report:
        if hasattr(self.store, "refresh_indices"):
            self.store.refresh_indices()
        options.setdefault("keyring", RING)
        options.setdefault("copy", self.copy)
        return verify(self.store, **options)


def _cluster(kind: str, url: str, tmp_path: Path) -> Iterator[Target]:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    if kind == "elasticsearch":
        from elasticsearch import Elasticsearch

        store: ElasticsearchStore = ElasticsearchStore(
            Elasticsearch(url, request_timeout=60), prefix=prefix, refresh="wait_for"
        )
    else:
        from opensearchpy import OpenSearch

        store = OpenSearchStore(OpenSearch(url, timeout=60), prefix=prefix, refresh="wait_for")
    store.setup()

    def open_log(**integrity: Any) -> AuditLog:
        fresh = type(store)(store.client, prefix=prefix, refresh="wait_for")
        return AuditLog(
            fresh, spool=tmp_path / "spool", integrity=_integrity(tmp_path, **integrity)
        )

    try:
        yield Target(store, open_log, ClusterTamper(store), tmp_path / "copy.jsonl")
    finally:
        names = list(store.client.indices.get(index=f"{prefix}-*"))
        if names:
            store.client.indices.delete(index=",".join(names))
        store.client.indices.delete_index_template(name=prefix)


def _integrity(tmp_path: Path, **options: Any) -> Integrity:
    options.setdefault("keyring", RING)
    options.setdefault("interval", 3600.0)
    options.setdefault("copy", tmp_path / "copy.jsonl")
    return Integrity(**options)


@pytest.fixture(params=["sqlite", "elasticsearch", "opensearch"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "sqlite":
        path = tmp_path / "audit.db"

        def open_log(**integrity: Any) -> AuditLog:
            return AuditLog(f"sqlite:///{path}", integrity=_integrity(tmp_path, **integrity))

        store = SQLiteStore(path)
        yield Target(store, open_log, SQLiteTamper(store), tmp_path / "copy.jsonl")
        store.close()
        return
    url = request.getfixturevalue(
        "es_url" if request.param == "elasticsearch" else "opensearch_url"
    )
    yield from _cluster(request.param, url, tmp_path)


def _records(log: AuditLog, count: int, **fields: Any) -> None:
    log.write([log.build("user.login", actor={"id": f"u{i}"}, **fields) for i in range(count)])


def scene(target: Target, **integrity: Any) -> list[dict[str, Any]]:
    log = target.open_log(**integrity)
    _records(log, 20)
    log.sealer.checkpoint()
    _records(log, 20)
    log.sealer.checkpoint()
    _records(log, 10)
    log.close()
    chain = target.tamper.chain()
    assert [api["integrity"]["seq"] for api in chain] == list(range(1, 55))
    return chain


def verdicts(report: Report) -> set[str]:
    return {f.verdict for w in report.writers for f in w.findings if f.severity == "error"}


def test_an_untouched_log_verifies(target: Target) -> None:
    scene(target)
    report = target.verify()
    assert report.ok, report.text()
    assert report.records == 54
    assert verdicts(report) == set()
    (writer,) = report.writers
    assert (writer.checkpoints, writer.closed) == (4, True)


def test_edit_a_field(target: Target) -> None:
    chain = scene(target)
    victim = at(chain, 10)
    target.tamper.replace(victim["id"], {**victim, "ipAddress": "198.51.100.7"})
    report = target.verify()
    assert not report.ok
    assert verdicts(report) == {"edited"}
    (finding,) = report.writers[0].findings
    assert (finding.seq, finding.record_id) == (10, victim["id"])


def test_edit_and_rewrite_the_chain_to_its_end(target: Target) -> None:
    """Every hash recomputed from the edit on: only the signed checkpoints can tell."""
    chain = scene(target)
    edited = [{**at(chain, 10), "actor": {"type": "user", "id": "someone-else"}}]
    chain = [api if api["integrity"]["seq"] != 10 else edited[0] for api in chain]
    for api in rechained(chain, 10):
        target.tamper.replace(api["id"], api)
    report = target.verify()
    assert verdicts(report) == {"edited"}
    signed = [f.seq for f in report.writers[0].findings if "checkpoint signed" in f.detail]
    assert signed == [22, 43, 54]
    assert any("differs from its copy" in f.detail for f in report.writers[0].findings)


def test_delete_a_record_in_the_middle(target: Target) -> None:
    chain = scene(target)
    target.tamper.delete(at(chain, 30)["id"])
    report = target.verify()
    assert verdicts(report) == {"missing"}
    assert [f.detail for f in report.writers[0].findings] == ["record 30 is absent"]


def test_delete_the_last_records(target: Target) -> None:
    """The tail after the last interval checkpoint, closing checkpoint included: the store
    alone cannot tell this from a crash; the copy kept elsewhere can."""
    chain = scene(target)
    for seq in range(44, 55):
        target.tamper.delete(at(chain, seq)["id"])
    assert verdicts(target.verify()) == {"truncated"}
    alone = target.verify(copy=None)
    assert alone.ok and alone.verdicts() == {"unclosed"}


def test_delete_the_last_records_before_the_closing_checkpoint(target: Target) -> None:
    chain = scene(target)
    for seq in range(50, 54):
        target.tamper.delete(at(chain, seq)["id"])
    report = target.verify()
    assert verdicts(report) == {"missing"}
    assert [f.detail for f in report.writers[0].findings] == ["4 records numbered 50-53 are absent"]


def test_delete_the_last_checkpoint(target: Target) -> None:
    chain = scene(target)
    target.tamper.delete(at(chain, 54)["id"])
    report = target.verify()
    assert verdicts(report) == {"truncated"}
    assert report.verdicts() == {"truncated"}  # not taken for a crash
    assert "1 later checkpoint(s), up to 54" in report.writers[0].findings[0].detail


def test_delete_the_last_two_checkpoints_in_a_row(target: Target) -> None:
    """Two deleted checkpoints are reported as two (CloudTrail's validator once counted
    them as one)."""
    log = target.open_log()
    _records(log, 5)
    log.sealer.checkpoint()
    log.close()  # 1 start · 2-6 · 7 interval · 8 close
    chain = target.tamper.chain()
    for seq in (7, 8):
        target.tamper.delete(at(chain, seq)["id"])
    report = target.verify()
    assert verdicts(report) == {"truncated"}
    assert "2 later checkpoint(s), up to 8" in report.writers[0].findings[0].detail


def test_swap_two_records(target: Target) -> None:
    """Two neighbours trade places, each resealed: every hash holds, the links do not."""
    chain = scene(target)
    first, second = at(chain, 30), at(chain, 31)
    target.tamper.replace(first["id"], resealed(first, seq=31))
    target.tamper.replace(second["id"], resealed(second, seq=30))
    report = target.verify()
    assert verdicts(report) == {"reordered"}


def test_insert_a_forged_record(target: Target) -> None:
    chain = scene(target)
    genuine = at(chain, 25)
    forged = resealed({**genuine, "id": new_id(), "actor": {"type": "user", "id": "mallory"}})
    target.tamper.insert(forged)
    report = target.verify()
    assert verdicts(report) == {"inserted"}


def test_insert_a_forged_record_after_the_close(target: Target) -> None:
    chain = scene(target)
    last = at(chain, 54)
    forged = resealed(
        {**at(chain, 53), "id": new_id()},
        seq=55,
        prev=last["integrity"]["hash"],
    )
    target.tamper.insert(forged)
    assert verdicts(target.verify()) == {"inserted"}


def test_a_whole_forged_writer(target: Target) -> None:
    """A chain made up from scratch, consistent in itself, that no checkpoint vouches for."""
    scene(target)
    other = target.tamper.chain()[5]
    forged = resealed(
        {**other, "id": new_id()},
        writer="p1-0000000000000000",
        seq=1,
        prev="0" * 64,
    )
    target.tamper.insert(forged)
    assert verdicts(target.verify()) == {"inserted"}


def test_duplicate_a_record(target: Target) -> None:
    chain = scene(target)
    copy = {**at(chain, 12), "id": new_id()}
    target.tamper.insert(copy)
    assert verdicts(target.verify()) == {"duplicate"}


def test_copy_a_chain_from_another_log(target: Target) -> None:
    scene(target)
    foreign = target.open_log(origin="billing-staging")
    _records(foreign, 3)
    foreign.close()
    report = target.verify()
    assert verdicts(report) == {"wrong_origin"}
    bad = [w for w in report.writers if not w.ok]
    assert [w.origin for w in bad] == ["billing-staging"]


def test_a_checkpoint_edited_after_signing(target: Target) -> None:
    """The closing one, resealed: its hash holds, its signature does not."""
    chain = scene(target)
    checkpoint = at(chain, 54)
    body = {**checkpoint["metadata"]["checkpoint"], "interval": 99999.0}
    target.tamper.replace(
        checkpoint["id"],
        resealed({**checkpoint, "metadata": {**checkpoint["metadata"], "checkpoint": body}}),
    )
    assert verdicts(target.verify(copy=None)) == {"bad_signature"}
    # The copy kept elsewhere also shows it is not the checkpoint that was written.
    assert verdicts(target.verify()) == {"bad_signature", "edited"}


def test_signed_with_a_wrong_key(target: Target) -> None:
    scene(target, keyring=Keyring([IntegrityKey.hmac("not the secret the auditor holds", "k1")]))
    report = target.verify(copy=None)
    assert verdicts(report) == {"bad_signature"}
    scene_other = Keyring([IntegrityKey.hmac(SECRET, "k-unknown")])
    assert verdicts(target.verify(keyring=scene_other, copy=None)) >= {"wrong_key"}


def test_signed_with_an_expired_key(target: Target) -> None:
    """A key that had stopped signing, used anyway (say, an old key that leaked): each
    checkpoint is checked against its own key's period."""
    scene(target)
    now = utcnow()
    expired = Keyring([IntegrityKey.hmac(SECRET, "k1", valid_until=now - timedelta(days=1))])
    assert verdicts(target.verify(keyring=expired, copy=None)) == {"key_expired"}


def test_records_straddling_a_key_rotation_verify(target: Target) -> None:
    switch = utcnow() + timedelta(seconds=1.5)
    ring = Keyring(
        [
            IntegrityKey.hmac(SECRET, "k1", valid_until=switch),
            IntegrityKey.hmac(SECRET + " 2", "k2", valid_from=switch),
        ]
    )
    log = target.open_log(keyring=ring)
    _records(log, 5)
    log.sealer.checkpoint()
    time.sleep(max(0.0, (switch - utcnow()).total_seconds()) + 0.1)
    _records(log, 5)
    log.close()
    chain = target.tamper.chain()
    keys = [
        api["metadata"]["checkpoint"]["key"]
        for api in chain
        if api["action"] == "audit_log.checkpoint"
    ]
    assert keys == ["k1", "k1", "k2"]
    report = target.verify(keyring=ring)
    assert report.ok, report.text()
    assert verdicts(target.verify(keyring=Keyring([ring.keys[0]]))) == {"wrong_key"}


def _aged_scene(target: Target) -> None:
    """Records from 100 days ago to today, for two tenants, then a checkpoint."""
    log = target.open_log()
    now = utcnow()
    log.write(
        [
            log.build(
                "user.login",
                actor={"id": f"u{i}"},
                tenant="acme" if i % 2 else "globex",
                timestamp=now - timedelta(days=100 - 2 * i),
            )
            for i in range(50)
        ]
    )
    log.sealer.checkpoint()
    log.close()


def test_retention_with_its_prune_checkpoint_verifies(target: Target) -> None:
    _aged_scene(target)
    log = target.open_log()
    result = log.apply_retention(timedelta(days=60), tenants={"acme": timedelta(days=30)})
    log.close()
    assert result.removed_records > 20
    report = target.verify()
    assert report.ok, report.text()


def test_retention_without_its_prune_checkpoint_does_not(target: Target) -> None:
    _aged_scene(target)
    target.store.apply_retention(
        __import__("auditwire").retention.RetentionPolicy(timedelta(days=60))
    )
    assert verdicts(target.verify()) == {"missing"}


def test_stale_checkpoints(target: Target) -> None:
    """Checkpoints further apart than promised: held back, or deleted and the chain relinked."""
    log = target.open_log(interval=0.5)
    _records(log, 2)
    log.sealer._stop.set()  # the timer is held back
    time.sleep(1.2)
    _records(log, 2)
    log.close()
    assert verdicts(target.verify(grace=timedelta(0))) == {"stale"}
