"""The examples of the README and of the documentation site run as written, the site builds
with warnings as errors, and the demo runs."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
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


def test_demo_serves_the_viewer_of_a_morning_lived_over_http(tmp_path: Path) -> None:
    """``make demo``: the morning recorded through the middleware, the viewer's line printed on
    its own, the page listing the spoofed request under its real peer; Ctrl-C stops it."""
    demo = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--db", str(tmp_path / "demo.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in demo.stdout or ():
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    printed: list[str] = []
    try:
        while not printed or not printed[-1].startswith("Viewer: "):
            printed.append(lines.get(timeout=60).rstrip("\n"))
        url = printed[-1].removeprefix("Viewer: ")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/admin/viewer", url), printed
        assert any(line.startswith("Recorded 14 audit events") for line in printed), printed
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200
        rows = re.findall(r"<tr data-id.*?</tr>", page.text, flags=re.S)
        spoofed = [row for row in rows if "127.0.0.66" in row]  # the peer, not its claim
        assert len(spoofed) == 1 and "login_failed" in spoofed[0]
        assert "10.0.0.1" not in page.text
        assert sum("198.51.100.7" in row for row in rows) >= 4  # Bob, through the trusted proxy
        assert sum("login_failed" in row for row in rows) == 6
    finally:
        demo.send_signal(signal.SIGINT)
        stopped = demo.wait(timeout=30)
        reader.join(timeout=30)  # the rest of the output, to the end
        if demo.stdout is not None:
            demo.stdout.close()
    # uvicorn shuts down cleanly, and the demo says so instead of a traceback.
    assert stopped == 0, printed
    while not lines.empty():
        printed.append(lines.get().rstrip("\n"))
    assert printed[-1] == "Stopped." and not any("Traceback" in line for line in printed), printed
