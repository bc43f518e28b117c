"""Coverage-guided fuzzing of the parsers that take hostile input (``targets.py``): a short
run of each in the suite, and every kept input — earlier findings among them — replayed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parent / "corpus"
#: Seconds of fuzzing per target in the suite; raise it for a deeper run.
SECONDS = int(os.environ.get("AUDITWIRE_FUZZ_SECONDS", "8"))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_kept_inputs_are_handled(name: str) -> None:
    kept = sorted((CORPUS / name).iterdir()) if (CORPUS / name).is_dir() else []
    assert kept, f"every target keeps at least one input under tests/fuzz/corpus/{name}/"
    for path in kept:
        TARGETS[name](path.read_bytes())


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_short_fuzzing_run_finds_nothing(name: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS / name, corpus)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.targets",
            name,
            f"-max_total_time={SECONDS}",
            "-rss_limit_mb=2048",
            "-timeout=10",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
    )
    findings = sorted(p.name for p in tmp_path.iterdir() if p.name != "corpus")
    assert run.returncode == 0 and not findings, (
        f"{name}: {findings} (keep the input under tests/fuzz/corpus/{name}/ once fixed)\n"
        + run.stderr[-3000:]
    )
