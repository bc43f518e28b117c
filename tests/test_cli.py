from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import auditwire
from auditwire import Actor, AuditLog
from auditwire.cli import main
from tests.support.servers import free_port


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/audit.db"
    with AuditLog(url) as log:
        for n in range(12):
            log.record(
                "login_failed" if n % 3 == 0 else "login",
                actor=Actor(id=f"u{n % 2}", email=f"u{n % 2}@acme.test"),
                outcome="failure" if n % 3 == 0 else "success",
                tenant="acme",
            )
    return url


def test_query_table_json_and_csv(store_url: str) -> None:
    out = io.StringIO()
    assert main(["query", "--store", store_url, "action=login_failed", "outcome=failure"], out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 5
    assert lines[-1] == "-- page 1 of 1, 4 record(s)"

    out = io.StringIO()
    args = ["query", "--store", store_url, "--format", "json", "--per-page", "5", "users=u1"]
    assert main(args, out) == 0
    body = json.loads(out.getvalue())
    assert body["meta"]["total"] == 6
    assert len(body["data"]) == 5

    out = io.StringIO()
    assert main(["query", "--store", store_url, "--format", "csv", "--tenant", "other"], out) == 0
    assert list(csv.reader(io.StringIO(out.getvalue())))[1:] == []


def test_export_to_a_file(store_url: str, tmp_path: Path) -> None:
    target = tmp_path / "out.ndjson"
    assert main(["export", "--store", store_url, "--format", "ndjson", "-o", str(target)]) == 0
    assert len(target.read_text().splitlines()) == 12


def test_bad_filters_exit_2_naming_them(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "--store", store_url, "endDate=later"]) == 2
    assert "endDate" in capsys.readouterr().err
    assert main(["export", "--store", store_url, "nonsense"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"auditwire {auditwire.__version__}\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["query", "--store", "http://127.0.0.1:9"],
        ["export", "--store", "http://127.0.0.1:9"],
        ["retention", "--store", "http://127.0.0.1:9", "--max-age", "30d"],
    ],
)
def test_an_unreachable_cluster_is_one_line_and_a_non_zero_exit(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("auditwire: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("command", ["query", "export"])
def test_read_only_commands_create_no_database(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUDITWIRE_STORE", raising=False)
    assert main([command]) == 1
    assert main([command, "--store", "sqlite:///new/dir/audit.db"]) == 1
    assert "there is no audit database at auditwire.db" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither a file nor a directory


def test_the_readme_the_cli_and_auditlog_share_one_default_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUDITWIRE_STORE", raising=False)
    log = AuditLog()
    log.record("login", actor={"id": "u1"})
    log.close()
    assert main(["query", "--format", "json"]) == 0
    assert [r["action"] for r in json.loads(capsys.readouterr().out)["data"]] == ["login"]
    root = Path(__file__).resolve().parents[1]
    for page in [root / "README.md", *(root / "docs").rglob("*.md")]:
        assert "sqlite:///audit.db" not in page.read_text(), page


def test_serve_runs_the_viewer_for_this_machine(store_url: str, tmp_path: Path) -> None:
    """``auditwire serve``: the viewer of every tenant on a loopback address, its reads
    recorded as the viewer's; SIGTERM stops it cleanly."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "auditwire.cli", "serve", "--store", store_url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == f"Viewer: http://127.0.0.1:{port}/viewer\n"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(100):
                try:
                    page = client.get("/", follow_redirects=True)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert page.status_code == 200 and page.url.path == "/viewer"
            assert page.text.count("<tr data-id") == 12
            listed = client.get("/audit-logs", params={"action": "login_failed"}).json()
            assert listed["meta"]["total"] == 4
    finally:
        server.send_signal(signal.SIGTERM)
        stopped = server.wait(timeout=30)
        errors = server.stderr.read() if server.stderr else ""
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()
    assert stopped in (0, -signal.SIGTERM), errors
    with AuditLog(store_url) as log:
        reads = log.search(actions=["audit_log.read"])
    assert [(r.actor.type, r.actor.id) for r in reads] == [("system", "auditwire-viewer")] * 2
