"""A client of one Elasticsearch major version against a cluster of the other.

Elastic's Python clients speak their own major version: a 9.x client sends
``compatible-with=9`` on every call and an 8.x cluster answers each one with a 400. Nothing
auditwire sends there may be lost or dead-lettered for it, and every failure must name the
client to install. (An 8.x client against a 9.x cluster is served by its REST compatibility;
``make test`` runs the Elasticsearch tests with that pair's own client too.)
"""

from __future__ import annotations

import io
import logging
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from auditwire import AuditLog
from auditwire.cli import main
from auditwire.errors import ClientVersionError
from auditwire.query import AuditQuery
from auditwire.stores.elasticsearch import ElasticsearchStore
from tests.support.engine import client_version

REMEDY = "pip install 'elasticsearch>=8,<9'"


@pytest.fixture
def newer_client() -> None:
    # The refusal exists only one way round; the suite's own client is the newer major.
    assert client_version().startswith("9."), client_version()


@pytest.mark.usefixtures("newer_client")
def test_records_wait_in_the_spool_with_the_client_to_install_named(
    other_es_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = AuditLog(ElasticsearchStore(other_es_url, prefix="test-versions"), spool=tmp_path)
    try:
        log.record("login", actor={"id": "u1"})
        assert not log.flush(timeout=3)
        stats = log.stats()
        assert stats.dead_lettered == 0 and stats.delivered == 0
        assert stats.spooled_bytes > 0
        assert stats.last_error is not None and REMEDY in stats.last_error
        assert any(REMEDY in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    finally:
        log.close()
    assert not list(tmp_path.rglob("dead-letter.ndjson"))


@pytest.mark.usefixtures("newer_client")
def test_reads_and_setup_name_the_client_to_install(other_es_url: str) -> None:
    store = ElasticsearchStore(other_es_url, prefix="test-versions")
    try:
        with pytest.raises(ClientVersionError, match=r"elasticsearch>=8,<9"):
            store.page(AuditQuery())
        with pytest.raises(ClientVersionError, match=r"elasticsearch>=8,<9"):
            store.setup()
    finally:
        store.close()
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["setup", "--es-url", other_es_url, "--prefix", "test-versions"])
    assert code == 1
    (line,) = err.getvalue().splitlines()
    assert line.startswith("auditwire: Elasticsearch refuses the API version") and REMEDY in line
