"""The examples of the README and of the documentation site run as written, the site builds
with warnings as errors, and the demo runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: Every Python example: (the page it is on, its first line's number, its code).
BLOCKS = [
    (page.relative_to(ROOT).as_posix(), text.count("\n", 0, match.start()) + 2, match[1])
    for page in PAGES
    for text in [page.read_text(encoding="utf-8")]
    for match in re.finditer(r"```python\n(.*?)```", text, flags=re.S)
]
ES_BLOCKS = [b for b in BLOCKS if "localhost:9200" in b[2]]
LOCAL_BLOCKS = [b for b in BLOCKS if b not in ES_BLOCKS]
Block = tuple[str, int, str]


def _name(block: Block) -> str:
    return f"{block[0]}:{block[1]}"


def _run(block: Block, code: str) -> None:
    """Runs the example with its page and line in tracebacks."""
    page, line, _ = block
    exec(compile("\n" * (line - 1) + code, page, "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize("block", LOCAL_BLOCKS, ids=_name)
def test_examples_run(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _run(block, block[2])


@pytest.mark.parametrize("block", ES_BLOCKS, ids=_name)
def test_elasticsearch_examples_run(
    block: Block, es_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        _run(block, block[2].replace("http://localhost:9200", es_url))
    finally:
        with Elasticsearch(es_url) as client:
            names = list(client.indices.get(index="auditwire-events-*", allow_no_indices=True).body)
            if names:
                client.indices.delete(index=",".join(names))
            client.options(ignore_status=404).indices.delete_index_template(name="auditwire-events")


def test_the_readme_links_to_pages_that_exist() -> None:
    """The site checks its own links when it builds; the front page is outside it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#:]+)\)", readme)
    assert "docs/capture.md" in targets
    assert [t for t in targets if not (ROOT / t).exists()] == []


def test_examples_are_found_on_the_pages() -> None:
    assert {page for page, _, _ in BLOCKS} >= {"README.md", "docs/index.md", "docs/query.md"}
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
