"""The README's examples and the demo run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
ES_BLOCKS = [b for b in BLOCKS if "localhost:9200" in b]
LOCAL_BLOCKS = [b for b in BLOCKS if b not in ES_BLOCKS]


@pytest.mark.parametrize("block", LOCAL_BLOCKS, ids=lambda b: b.splitlines()[0][:40])
def test_readme_examples_run(block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize("block", ES_BLOCKS, ids=lambda b: b.splitlines()[0][:40])
def test_readme_elasticsearch_examples_run(
    block: str, es_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(block.replace("http://localhost:9200", es_url), "README.md", "exec"), {})
    finally:
        with Elasticsearch(es_url) as client:
            names = list(client.indices.get(index="auditwire-events-*", allow_no_indices=True).body)
            if names:
                client.indices.delete(index=",".join(names))
            client.options(ignore_status=404).indices.delete_index_template(name="auditwire-events")


def test_readme_has_examples_of_both_kinds() -> None:
    assert LOCAL_BLOCKS
    assert ES_BLOCKS


def test_demo_records_and_reads_back(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), str(db)],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    assert f"recorded 12 audit events in {db}" in out
    assert "Failed logins (2)" in out
    assert "bob@acme.test's role was edited to Finance by alice@acme.test" in out
    assert "sk_live" not in out
    assert "hunter2" not in out
