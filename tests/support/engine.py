"""A real single-node Elasticsearch for the test suite.

Fetches Elastic's test distribution (``org.elasticsearch.distribution.integ-test-zip``) with
Maven into the user's cache, unpacks it into a temporary directory, and runs it on a free
loopback port with security off, a 512 MB heap and a throw-away data path. Elasticsearch refuses
to run as root, so as root it runs as an unprivileged system user created for the purpose.

Run as a script to try it by hand: ``python -m tests.support.engine`` starts an engine, prints
its URL and stops it on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

#: The pinned engine. 9.x needs Java 21 or newer.
ES_VERSION = os.environ.get("AUDITWIRE_TEST_ES_VERSION", "9.2.8")
ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
ENGINE_USER = "auditwire-es"
START_TIMEOUT = 180.0


class EngineError(RuntimeError):
    """The engine could not be fetched or started; the message says why."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "auditwire" / "elasticsearch"


def fetch(version: str = ES_VERSION) -> Path:
    """The distribution zip, downloaded with Maven on first use and cached afterwards."""
    target = cache_dir() / f"elasticsearch-{version}.zip"
    if target.is_file() and zipfile.is_zipfile(target):
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise EngineError("Maven (mvn) is needed to fetch the Elasticsearch test distribution")
    target.parent.mkdir(parents=True, exist_ok=True)
    command = [
        mvn,
        "-q",
        "-B",
        "dependency:copy",
        f"-Dartifact={ARTIFACT.format(version=version)}",
        f"-DoutputDirectory={target.parent}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not target.is_file():
        raise EngineError(
            f"could not fetch Elasticsearch {version} with Maven:\n{done.stdout[-2000:]}"
        )
    return target


def _java_major(home: Path) -> int:
    release = home / "release"
    if not release.is_file():
        return 0
    match = re.search(r'JAVA_VERSION="(\d+)', release.read_text())
    return int(match.group(1)) if match else 0


def find_java(minimum: int = 21) -> Path:
    """A JDK home of at least ``minimum``: $ES_JAVA_HOME, $JAVA_HOME, then /usr/lib/jvm."""
    candidates = [
        Path(p) for p in (os.environ.get("ES_JAVA_HOME"), os.environ.get("JAVA_HOME")) if p
    ]
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += sorted(jvm.iterdir(), key=_java_major, reverse=True)
    for home in candidates:
        if _java_major(home) >= minimum and (home / "bin" / "java").is_file():
            return home
    raise EngineError(f"Elasticsearch needs Java {minimum}+; none found (set ES_JAVA_HOME)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ensure_user() -> str:
    try:
        pwd.getpwnam(ENGINE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                ENGINE_USER,
            ],
            check=True,
            capture_output=True,
        )
    return ENGINE_USER


def _get_json(url: str, timeout: float = 2.0) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data: dict[str, object] = json.loads(response.read())
        return data


@dataclass
class Engine:
    """One running node; :meth:`start` returns once the cluster answers."""

    version: str = ES_VERSION
    heap: str = "512m"
    url: str = ""
    workdir: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> str:
        archive = fetch(self.version)
        java = find_java(21 if int(self.version.split(".")[0]) >= 9 else 17)
        self.workdir = Path(tempfile.mkdtemp(prefix="auditwire-es-"))
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(self.workdir)
        home = self.workdir / f"elasticsearch-{self.version}"
        for script in (home / "bin").iterdir():
            script.chmod(0o755)
        data, logs = self.workdir / "data", self.workdir / "logs"
        data.mkdir()
        logs.mkdir()
        port, transport = _free_port(), _free_port()
        command = [
            "env",
            f"ES_JAVA_HOME={java}",
            f"ES_JAVA_OPTS=-Xms{self.heap} -Xmx{self.heap}",
            str(home / "bin" / "elasticsearch"),
            "-E", "discovery.type=single-node",
            "-E", "xpack.security.enabled=false",
            "-E", "network.host=127.0.0.1",
            "-E", f"http.port={port}",
            "-E", f"transport.port={transport}",
            "-E", f"path.data={data}",
            "-E", f"path.logs={logs}",
            "-E", "cluster.routing.allocation.disk.threshold_enabled=false",
        ]  # fmt: skip
        if os.geteuid() == 0:
            user = _ensure_user()
            subprocess.run(["chown", "-R", user, str(self.workdir)], check=True)
            command = ["runuser", "-u", user, "--", *command]
        self.url = f"http://127.0.0.1:{port}"
        with (self.workdir / "console.log").open("wb") as log:  # the child keeps its own fd
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait()
        return self.url

    def _wait(self) -> None:
        if self.process is None or self.workdir is None:
            raise EngineError("the engine was not started")
        deadline = time.monotonic() + START_TIMEOUT
        health = f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=2s"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.workdir / "console.log").read_text(errors="replace")[-3000:]
                self.stop()
                raise EngineError(f"Elasticsearch exited during start-up:\n{tail}")
            try:
                status = _get_json(health, timeout=5)
                if status.get("status") in ("green", "yellow"):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise EngineError(f"Elasticsearch did not answer within {START_TIMEOUT:.0f}s")

    def server_version(self) -> str:
        nodes = _get_json(f"{self.url}/_nodes/_local?filter_path=nodes.*.version")
        node = next(iter(nodes["nodes"].values()))  # type: ignore[attr-defined]
        return str(node["version"])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


if __name__ == "__main__":
    engine = Engine()
    print("starting Elasticsearch", engine.version, "...", flush=True)
    url = engine.start()
    print(f"Elasticsearch {engine.server_version()} at {url} (Ctrl-C stops it)", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        engine.stop()
