"""Test-session plumbing: the real Elasticsearch, per-test index isolation, record factories.

One engine serves the whole session (start-up costs ~30 s); each test gets its own index
prefix, so tests never see each other's records. ``AUDITWIRE_ES_URL`` points the suite at an
existing cluster instead. When ``CI`` is set, an engine that cannot be reached fails the run:
integration tests never skip there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditwire import AuditLog
from auditwire.stores.elasticsearch import ElasticsearchStore
from tests.support.engine import (
    ELASTICSEARCH,
    OPENSEARCH,
    OTHER_ELASTICSEARCH,
    Distribution,
    Engine,
    EngineError,
    client_version,
    server_version,
)

_engine_info: dict[str, str] = {}


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _running_engine(request: pytest.FixtureRequest, dist: Distribution, env: str) -> Iterator[str]:
    """The URL of ``$env`` or of an engine of ``dist`` started for the session."""
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    url = os.environ.get(env)
    engine: Engine | None = None
    try:
        if not url:
            engine = Engine(dist)
            url = engine.start()
        version = server_version(url)
    except (EngineError, OSError, ImportError) as exc:
        if engine is not None:
            engine.stop()
        message = f"no {dist.name} for integration tests: {exc}"
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    client = "opensearch-py" if dist.name == "opensearch" else "elasticsearch"
    about = f"{dist.name} {version} (client {client} {client_version(client)})"
    _engine_info[env] = about
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n{about} at {url}")
    try:
        yield url
    finally:
        if engine is not None:
            engine.stop()


@pytest.fixture(scope="session")
def es_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of the session's Elasticsearch, started on first use."""
    yield from _running_engine(request, ELASTICSEARCH, "AUDITWIRE_ES_URL")


@pytest.fixture(scope="session")
def opensearch_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of the session's OpenSearch, started on first use."""
    yield from _running_engine(request, OPENSEARCH, "AUDITWIRE_OPENSEARCH_URL")


@pytest.fixture(scope="session")
def other_es_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of an Elasticsearch of the other major version than the installed client's."""
    yield from _running_engine(request, OTHER_ELASTICSEARCH, "AUDITWIRE_OTHER_ES_URL")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for about in _engine_info.values():
        terminalreporter.write_line(f"integration tests ran against {about}")


@pytest.fixture(scope="session", autouse=True)
def spool_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Spools of remote stores go to the session's temporary directory, not the home one."""
    root = tmp_path_factory.mktemp("spool")
    previous = os.environ.get("AUDITWIRE_SPOOL")
    os.environ["AUDITWIRE_SPOOL"] = str(root)
    yield root
    if previous is None:
        del os.environ["AUDITWIRE_SPOOL"]
    else:
        os.environ["AUDITWIRE_SPOOL"] = previous


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AuditLog]:
    """An audit log over a fresh SQLite file, closed (and so flushed) after the test."""
    audit_log = AuditLog(f"sqlite:///{tmp_path}/audit.db")
    yield audit_log
    audit_log.close()


@pytest.fixture
def es_prefix() -> str:
    """An index prefix of this test's own."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def es_store(es_url: str, es_prefix: str) -> Iterator[ElasticsearchStore]:
    """A store over fresh indices, template installed, writes visible at once."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_url, request_timeout=30)
    store = ElasticsearchStore(client, prefix=es_prefix, refresh="wait_for")
    store.setup()
    try:
        yield store
    finally:
        # By name: clusters may refuse wildcard deletes (action.destructive_requires_name).
        names = list(client.indices.get(index=f"{es_prefix}-*", allow_no_indices=True).body)
        if names:
            client.indices.delete(index=",".join(names))
        client.indices.delete_index_template(name=es_prefix)
        client.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses an engine is an integration test (``-m 'not integration'`` skips
    them all on a machine without Java); those of the session's Elasticsearch are also marked
    ``elasticsearch``, the set ``make test`` runs a second time with the 8.x client."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if {"es_url", "opensearch_url", "other_es_url"} & fixtures:
            item.add_marker(pytest.mark.integration)
        if "es_url" in fixtures:
            item.add_marker(pytest.mark.elasticsearch)
