"""Many writers on one log: four forked children write 10,000 records each — through the
hand-off's batches, as middleware does — on SQLite, Elasticsearch and OpenSearch, and every
chain verifies with the counts matching; a writer killed with SIGKILL is a warning only."""

from __future__ import annotations

import os
import signal
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from auditwire import AuditLog, SQLiteStore
from auditwire.integrity import Integrity, IntegrityKey, Keyring
from auditwire.integrity.verify import verify
from auditwire.stores.elasticsearch import ElasticsearchStore, OpenSearchStore

RING = Keyring([IntegrityKey.hmac("four writers, one secret", "k1")])
WRITERS, RECORDS = 4, 10_000


def _wait(pids: list[int], timeout: float = 600) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for pid in pids:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                codes.append(status)
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                pytest.fail("a writer did not finish")
            time.sleep(0.05)
    return codes


def _child(work: Callable[[], None]) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # forking a threaded process
        pid = os.fork()
    if pid == 0:  # the child: no teardown of the test's
        code = 1
        try:
            work()
            code = 0
        finally:
            os._exit(code)
    return pid


@pytest.fixture(params=["sqlite", "elasticsearch", "opensearch"])
def opened(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Any, Callable[[], AuditLog]]]:
    integrity = Integrity(keyring=RING, interval=3600.0, copy=tmp_path / "copy.jsonl")
    if request.param == "sqlite":
        path = tmp_path / "audit.db"
        yield SQLiteStore(path), lambda: AuditLog(f"sqlite:///{path}", integrity=integrity)
        return
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    if request.param == "elasticsearch":
        from elasticsearch import Elasticsearch

        store: ElasticsearchStore = ElasticsearchStore(
            Elasticsearch(request.getfixturevalue("es_url"), request_timeout=120), prefix=prefix
        )
    else:
        from opensearchpy import OpenSearch

        url = request.getfixturevalue("opensearch_url")
        store = OpenSearchStore(OpenSearch(url, timeout=120), prefix=prefix)
    store.setup()
    try:
        yield store, lambda: AuditLog(store, spool=tmp_path / "spool", integrity=integrity)
    finally:
        names = list(store.client.indices.get(index=f"{prefix}-*"))
        if names:
            store.client.indices.delete(index=",".join(names))
        store.client.indices.delete_index_template(name=prefix)


def test_four_forked_writers_verify(
    opened: tuple[Any, Callable[[], AuditLog]], tmp_path: Path
) -> None:
    store, open_log = opened
    log = open_log()
    log.record("user.login")  # the parent writes first: its children say where it stood

    def write(n: int) -> Callable[[], None]:
        def work() -> None:
            for i in range(RECORDS):
                log.submit(log.build("user.login", actor={"id": f"w{n}-{i}"}))
            assert log.flush(timeout=300)
            log.close()

        return work

    codes = _wait([_child(write(n)) for n in range(WRITERS)])
    assert [os.waitstatus_to_exitcode(code) for code in codes] == [0] * WRITERS
    log.close()
    if hasattr(store, "refresh_indices"):
        store.refresh_indices()

    report = verify(store, keyring=RING, copy=tmp_path / "copy.jsonl")
    assert report.ok, report.text()
    assert report.verdicts() == set()
    parent = next(w for w in report.writers if w.records == 3)  # start, its record, close
    children = [w for w in report.writers if w is not parent]
    assert len(children) == WRITERS
    assert [w.records - w.checkpoints for w in children] == [RECORDS] * WRITERS
    assert all(w.closed and w.first == 1 for w in children)
    forks = [
        api["metadata"]["checkpoint"]
        for api in store.chain()
        if api["action"] == "audit_log.checkpoint" and api["integrity"]["seq"] == 1
    ]
    kinds = sorted(body["kind"] for body in forks)
    assert kinds == ["fork"] * WRITERS + ["start"]
    assert {body["parent"]["writer"] for body in forks if body["kind"] == "fork"} == {parent.writer}


def test_a_writer_killed_with_sigkill_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    integrity = Integrity(keyring=RING, interval=0.5, copy=tmp_path / "copy.jsonl")

    def work() -> None:
        log = AuditLog(f"sqlite:///{path}", integrity=integrity)
        log.write([log.build("user.login") for _ in range(10)])
        os.kill(os.getpid(), signal.SIGKILL)

    (status,) = _wait([_child(work)])
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    time.sleep(1.2)
    report = verify(
        SQLiteStore(path), keyring=RING, copy=tmp_path / "copy.jsonl", grace=timedelta(0)
    )
    assert report.ok, report.text()
    assert report.verdicts() == {"unclosed"}
    (writer,) = report.writers
    assert "crash or kill -9" in writer.findings[0].detail


def test_a_forked_child_opens_the_database_anew(tmp_path: Path) -> None:
    """SQLite forbids using a connection made before fork() in the child; the store opens its
    own there, and the parent's stays the parent's."""
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    store = log.store
    assert isinstance(store, SQLiteStore)
    inherited = store._conn
    log.record("user.login")

    def work() -> None:
        assert store._conn is not inherited
        log.record("user.login")
        log.close()

    (status,) = _wait([_child(work)])
    assert os.waitstatus_to_exitcode(status) == 0
    assert store._conn is inherited
    log.record("user.logout")
    log.close()
    report = verify(SQLiteStore(tmp_path / "audit.db"))
    assert report.ok and report.records == 3 and len(report.writers) == 2
