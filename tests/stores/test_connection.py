"""A secured cluster's credentials, CA bundle and Cloud ID, from options and variables.

The test distributions run without security, so the credentials are checked where they go:
on the wire, through a proxy in front of the real Elasticsearch that keeps what it forwards.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import redirect_stderr
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from auditwire import AuditLog, open_store
from auditwire.cli import main
from auditwire.stores.connection import Connection
from auditwire.stores.elasticsearch import ElasticsearchStore, OpenSearchStore
from auditwire.stores.index_template import DEFAULT_PREFIX
from tests.records import T0
from tests.support.proxy import FaultProxy


@pytest.fixture
def tapped(es_url: str) -> Iterator[FaultProxy]:
    parts = urlsplit(es_url)
    proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 9200, tap=True)
    yield proxy
    proxy.close()


def sent(proxy: FaultProxy) -> str:
    return bytes(proxy.forwarded).decode("latin-1").lower()


def test_the_cli_sends_the_api_key_of_its_variable(
    tapped: FaultProxy, es_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDITWIRE_ES_API_KEY", "a2V5LWZyb20tZW52")
    assert main(["setup", "--es-url", tapped.url, "--prefix", es_prefix]) == 0
    assert "authorization: apikey a2v5lwzyb20tzw52" in sent(tapped)
    ElasticsearchStore(tapped.url, prefix=es_prefix).client.indices.delete_index_template(
        name=es_prefix
    )


def test_an_option_wins_over_its_variable_and_basic_auth_is_sent(
    tapped: FaultProxy, es_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDITWIRE_ES_USERNAME", "from-env")
    monkeypatch.setenv("AUDITWIRE_ES_PASSWORD", "env-secret")
    out = io.StringIO()
    code = main(
        ["query", "--store", tapped.url, "--es-username", "ops", "--es-password", "s3cret"],
        out,
    )
    assert code == 0, out.getvalue()
    token = base64.b64encode(b"ops:s3cret").decode().lower()
    assert f"authorization: basic {token}" in sent(tapped)


def test_an_application_s_store_url_takes_the_variables(
    tapped: FaultProxy, es_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AUDITWIRE_ES_API_KEY", "YXBwLWtleQ==")
    log = AuditLog(tapped.url, spool=tmp_path)  # the default prefix: removed below
    try:
        log.record("login", actor={"id": "u1"}, timestamp=T0)
        assert log.flush(timeout=30)
    finally:
        log.close()
    assert "authorization: apikey yxbwlwtleq==" in sent(tapped)
    cleanup = ElasticsearchStore(es_url)
    cleanup.client.indices.delete(index=f"{DEFAULT_PREFIX}-2024.01")
    cleanup.client.indices.delete_index_template(name=DEFAULT_PREFIX)
    cleanup.close()


def test_a_cloud_id_names_the_deployment(tmp_path: Path) -> None:
    cloud_id = "prod:" + base64.b64encode(b"es.example.test$abc123$kib456").decode()
    store = open_store("elastic-cloud:", connection=Connection(cloud_id=cloud_id, api_key="k"))
    assert isinstance(store, ElasticsearchStore)
    (node,) = store.client.transport.node_pool.all()
    assert node.base_url == "https://abc123.es.example.test:443"
    store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--es-username", "ops"], "needs both a username and a password"),
        (["--es-api-key", "k", "--es-username", "u", "--es-password", "p"], "not both"),
        (["--es-ca-certs", "/nowhere/ca.pem"], "'/nowhere/ca.pem' is not a file"),
    ],
)
def test_inconsistent_access_options_are_one_line_errors(args: list[str], message: str) -> None:
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["query", "--store", "http://127.0.0.1:9", *args])
    assert code == 2
    (line,) = err.getvalue().splitlines()
    assert line.startswith("auditwire: ") and message in line


def test_a_ca_bundle_reaches_the_client_and_opensearch_refuses_what_it_lacks(
    tmp_path: Path,
) -> None:
    import certifi

    store = ElasticsearchStore(
        "https://127.0.0.1:9200", connection=Connection(ca_certs=certifi.where())
    )
    (node,) = store.client.transport.node_pool.all()
    assert node.config.ca_certs == certifi.where()
    store.close()
    with pytest.raises(ValueError, match="not an API key or Cloud ID"):
        OpenSearchStore("http://127.0.0.1:9200", connection=Connection(api_key="k"))
    with pytest.raises(ValueError, match="configure the client you pass"):
        ElasticsearchStore(store.client, connection=Connection(api_key="k"))
