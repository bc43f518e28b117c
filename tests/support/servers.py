"""A real server (gunicorn, uvicorn) run for a test: started on a free loopback port, waited
for, stopped with SIGTERM as a process manager would."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(
    arguments: list[str], port: int, log: Path, env: dict[str, str]
) -> Iterator[httpx.Client]:
    """Run ``python -m <arguments>`` from the project's root, serving on ``port``; yield a
    client once ``GET /hello`` answers. On leaving, SIGTERM, and the exit status is checked
    (0, or the signal re-raised once the server shut down cleanly, as uvicorn does)."""
    errors = log.open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", *arguments],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
        stdout=subprocess.DEVNULL,
        stderr=errors,
    )
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            while True:
                try:
                    client.get("/hello")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, f"{arguments[0]} did not start"
                    time.sleep(0.2)
            yield client
    finally:
        server.terminate()
        stopped = server.wait(timeout=60)
        errors.close()
    assert stopped in (0, -signal.SIGTERM), log.read_text()


@contextlib.contextmanager
def in_thread(app: Any) -> Iterator[str]:
    """Serve ``app`` under uvicorn in a thread of this process; yield its base URL."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
