from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from importlib.metadata import metadata
from pathlib import Path

import pytest

from auditwire.cli import main

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL = [
    "elasticsearch",
    "elastic_transport",
    "opensearchpy",
    "orjson",
    "pythonjsonlogger",
    "structlog",
    "starlette",
    "ua_parser",
    "opentelemetry",
    "httpx",
    "flask",
    "flask_login",
    "fastapi",
    "django",
]


def run_without_optional_dependencies(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where every optional dependency fails to import."""
    blocker = textwrap.dedent(
        f"""
        import sys
        BLOCKED = {OPTIONAL!r}
        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked optional dependency: {{name}}")
                return None
        sys.meta_path.insert(0, Blocker())
        """
    )
    return subprocess.run(
        [sys.executable, "-c", blocker + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_import_and_core_use_need_no_optional_dependency() -> None:
    done = run_without_optional_dependencies(
        """
        import auditwire
        log = auditwire.AuditLog("sqlite:///:memory:")
        record = log.record("user.invited", actor={"email": "a@b.c"})
        assert log.get(record.id) == record
        loaded = sorted(m.split(".")[0] for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("ok", len(auditwire.__all__))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


def test_a_missing_extra_fails_at_construction_with_an_install_hint() -> None:
    done = run_without_optional_dependencies(
        """
        from auditwire import MissingDependencyError
        from auditwire.integrations.otel import OpenTelemetryLogSink
        from auditwire.stores.elasticsearch import ElasticsearchStore, OpenSearchStore
        from auditwire.stores.jsonl import JsonLinesSink
        for build in (
            lambda: ElasticsearchStore("http://127.0.0.1:9"),
            lambda: OpenSearchStore("http://127.0.0.1:9"),
            JsonLinesSink,
            OpenTelemetryLogSink,
        ):
            try:
                build()
            except MissingDependencyError as exc:
                print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "ElasticsearchStore needs an optional dependency: pip install 'auditwire[elasticsearch]'",
        "OpenSearchStore needs an optional dependency: pip install 'auditwire[opensearch]'",
        "JSON-lines output needs an optional dependency: pip install 'auditwire[jsonlogger]'",
        "OpenTelemetryLogSink needs an optional dependency: pip install 'auditwire[otel]'",
    ]


def test_shipped_index_template_matches_the_code() -> None:
    out = io.StringIO()
    assert main(["template"], out=out) == 0
    shipped = (ROOT / "integrations" / "elasticsearch" / "index-template.json").read_text()
    assert json.loads(shipped) == json.loads(out.getvalue()), (
        "regenerate with: auditwire template > integrations/elasticsearch/index-template.json"
    )


def test_the_schema_file_ships_inside_the_package() -> None:
    import auditwire

    schema = auditwire.record_schema()
    assert schema["$id"] == "urn:auditwire:schema:audit-record:1"
    assert set(schema["required"]) >= {"id", "action", "category", "actor", "outcome"}


def test_cli_setup_reports_an_unreachable_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["setup", "--es-url", "http://127.0.0.1:9"]) == 1
    assert "could not install the template at http://127.0.0.1:9" in capsys.readouterr().err


def test_the_license_file_matches_the_metadata() -> None:
    """The distribution's declared license is the one whose text ships beside it."""
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    declared = metadata("auditwire")
    assert declared["License-Expression"] == "Apache-2.0"
    assert "LICENSE" in (declared.get_all("License-File") or [])


def test_import_needs_no_posix_file_locks_and_a_spool_says_it_does() -> None:
    done = run_without_optional_dependencies(
        """
        import tempfile
        sys.modules["fcntl"] = None  # as on Windows: importing it fails
        import auditwire
        from auditwire.delivery.spool import Spool, SpoolUnusableError
        log = auditwire.AuditLog("sqlite:///:memory:")
        log.record("user.invited", actor={"email": "a@b.c"})
        try:
            Spool(tempfile.mkdtemp()).append([b"x"])
        except SpoolUnusableError as exc:
            print("refused:", exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "refused: the audit spool" in done.stdout and "POSIX file locks" in done.stdout


def test_the_wheel_carries_the_viewers_templates_and_the_schema(tmp_path: Path) -> None:
    """Files that are not Python ship too: without them the viewer and validation break."""
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("auditwire-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {
        f"auditwire/listing/templates/{n}.html"
        for n in ("base", "charts", "list", "record", "error")
    }
    assert templates <= names
    assert any(n.startswith("auditwire/schema/") and n.endswith(".json") for n in names)
