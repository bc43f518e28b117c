"""Flush at exit and in forked workers: a pre-forking server's workers each deliver what they
captured, and a process that just ends delivers what it recorded."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from auditwire.stores.elasticsearch import ElasticsearchStore

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_gunicorn_preforked_workers_deliver_everything_on_shutdown(
    es_url: str, es_store: ElasticsearchStore, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
        "AUDITWIRE_TEST_ES": es_url,
        "AUDITWIRE_TEST_PREFIX": es_store.prefix,
        "AUDITWIRE_SPOOL": str(tmp_path),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "tests.support.wsgi_app:app", "--preload",
         "--workers", "2", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        env=env,
        cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        pids: set[str] = set()
        sent = 0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            while sent < 200 or (len(pids) < 2 and sent < 2_000):  # until both have served
                answer = client.post(f"/users/{sent}/block", headers={"connection": "close"})
                assert answer.status_code == 200
                pids.add(answer.text.rsplit(" ", 1)[1])
                sent += 1
    finally:
        server.send_signal(signal.SIGTERM)  # graceful: workers exit, flushing on the way out
        assert server.wait(timeout=60) == 0
    assert len(pids) == 2  # both workers served, each with its own pipeline
    es_store.refresh_indices()
    from auditwire import AuditQuery

    blocked = es_store.count(AuditQuery(actions=("user_blocked",)))
    assert blocked == sent
    assert not list(tmp_path.rglob("*.seg"))  # nothing left behind to replay


def test_a_process_that_just_ends_delivers_what_it_recorded(
    es_url: str, es_store: ElasticsearchStore, tmp_path: Path
) -> None:
    code = (
        "import sys\n"
        "from auditwire import AuditLog\n"
        "from auditwire.stores.elasticsearch import ElasticsearchStore\n"
        "log = AuditLog(ElasticsearchStore(sys.argv[1], prefix=sys.argv[2]), spool=sys.argv[3])\n"
        "for n in range(250):\n"
        "    log.record('login', actor={'type': 'user', 'id': f'u{n}'})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run(
        [sys.executable, "-c", code, es_url, es_store.prefix, str(tmp_path)],
        env=env,
        check=True,
        timeout=120,
    )
    es_store.refresh_indices()
    assert es_store.count() == 250
    assert not list(tmp_path.rglob("*.seg"))
