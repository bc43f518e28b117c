"""A real single-node Elasticsearch (or OpenSearch) for the test suite.

Fetches the projects' test distributions (``org.elasticsearch.distribution.integ-test-zip``,
``org.opensearch.distribution.integ-test-zip``) with Maven into the user's cache, unpacks one
into a temporary directory, and runs it on a free loopback port with security off, a 512 MB heap
and a throw-away data path. Both refuse to run as root, so as root they run as an unprivileged
system user created for the purpose.

Run as a script to try it by hand: ``python -m tests.support.engine [opensearch]`` starts an
engine, prints its URL and stops it on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: The pinned Elasticsearch of each major version. Elastic's clients speak their own major
#: version, so the suite's Elasticsearch is the one of the installed client's major.
ES_VERSIONS = {8: "8.19.9", 9: "9.2.8"}


def client_version(package: str = "elasticsearch") -> str:
    """The installed version of a client package, or ``"none"``."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _client_major() -> int:
    major = client_version().split(".")[0]
    return int(major) if major.isdigit() and int(major) in ES_VERSIONS else max(ES_VERSIONS)


#: The pinned engines. Elasticsearch 9.x and OpenSearch 3.x need Java 21 or newer.
ES_VERSION = os.environ.get("AUDITWIRE_TEST_ES_VERSION") or ES_VERSIONS[_client_major()]
OPENSEARCH_VERSION = os.environ.get("AUDITWIRE_TEST_OPENSEARCH_VERSION", "3.3.2")


@dataclass(frozen=True)
class Distribution:
    name: str  # also the start script's and the unpacked directory's name
    group: str
    version: str
    env_prefix: str  # ES_JAVA_HOME / OPENSEARCH_JAVA_HOME...
    settings: tuple[str, ...] = ()

    @property
    def artifact(self) -> str:
        return f"{self.group}:{self.name}:{self.version}:zip"


ELASTICSEARCH = Distribution(
    "elasticsearch",
    "org.elasticsearch.distribution.integ-test-zip",
    ES_VERSION,
    "ES",
    ("xpack.security.enabled=false",),
)
#: The Elasticsearch of the other major version than the client's (tests of a mismatch).
OTHER_ELASTICSEARCH = dataclasses.replace(
    ELASTICSEARCH, version=ES_VERSIONS[8 if _client_major() == 9 else 9]
)
OPENSEARCH = Distribution(
    "opensearch", "org.opensearch.distribution.integ-test-zip", OPENSEARCH_VERSION, "OPENSEARCH"
)
ENGINE_USER = "auditwire-es"
START_TIMEOUT = 180.0


class EngineError(RuntimeError):
    """The engine could not be fetched or started; the message says why."""


def cache_dir(name: str = "elasticsearch") -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "auditwire" / name


def fetch(dist: Distribution = ELASTICSEARCH) -> Path:
    """The distribution zip, downloaded with Maven on first use and cached afterwards."""
    target = cache_dir(dist.name) / f"{dist.name}-{dist.version}.zip"
    if target.is_file() and zipfile.is_zipfile(target):
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise EngineError(f"Maven (mvn) is needed to fetch the {dist.name} test distribution")
    target.parent.mkdir(parents=True, exist_ok=True)
    command = [
        mvn,
        "-q",
        "-B",
        "dependency:copy",
        f"-Dartifact={dist.artifact}",
        f"-DoutputDirectory={target.parent}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not target.is_file():
        raise EngineError(
            f"could not fetch {dist.name} {dist.version} with Maven:\n{done.stdout[-2000:]}"
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


def server_version(url: str) -> str:
    """The version of the node at ``url`` (``GET /`` is missing from minimal builds)."""
    nodes = _get_json(f"{url}/_nodes/_local?filter_path=nodes.*.version")
    node = next(iter(nodes["nodes"].values()))  # type: ignore[attr-defined]
    return str(node["version"])


@dataclass
class Engine:
    """One running node; :meth:`start` returns once the cluster answers."""

    dist: Distribution = ELASTICSEARCH
    heap: str = "512m"
    url: str = ""
    workdir: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> str:
        """Start a single-node cluster and wait until it answers."""
        self.launch(("discovery.type=single-node",))
        self._wait()
        return self.url

    def launch(
        self,
        cluster_settings: tuple[str, ...],
        *,
        port: int | None = None,
        transport: int | None = None,
    ) -> None:
        """Start the node's process with ``cluster_settings`` (discovery), without waiting."""
        archive = fetch(self.dist)
        major = int(self.dist.version.split(".")[0])
        java = find_java(21 if major >= (9 if self.dist is ELASTICSEARCH else 3) else 17)
        self.workdir = Path(tempfile.mkdtemp(prefix="auditwire-es-"))
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(self.workdir)
        home = self.workdir / f"{self.dist.name}-{self.dist.version}"
        for script in (home / "bin").iterdir():
            script.chmod(0o755)
        data, logs = self.workdir / "data", self.workdir / "logs"
        data.mkdir()
        logs.mkdir()
        port, transport = port or _free_port(), transport or _free_port()
        command = [
            "env",
            f"{self.dist.env_prefix}_JAVA_HOME={java}",
            f"{self.dist.env_prefix}_JAVA_OPTS=-Xms{self.heap} -Xmx{self.heap}",
            str(home / "bin" / self.dist.name),
            *(arg for setting in self.dist.settings for arg in ("-E", setting)),
            *(arg for setting in cluster_settings for arg in ("-E", setting)),
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

    def kill(self) -> None:
        """SIGKILL the node, as the OOM killer or a lost machine would (its files stay until
        :meth:`stop`)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def _wait(self, nodes: int = 1) -> None:
        if self.process is None or self.workdir is None:
            raise EngineError("the engine was not started")
        deadline = time.monotonic() + START_TIMEOUT
        health = (
            f"{self.url}/_cluster/health?wait_for_status=yellow&wait_for_nodes={nodes}&timeout=2s"
        )
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.workdir / "console.log").read_text(errors="replace")[-3000:]
                self.stop()
                raise EngineError(f"{self.dist.name} exited during start-up:\n{tail}")
            try:
                status = _get_json(health, timeout=5)
                if status.get("status") in ("green", "yellow") and not status.get("timed_out"):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise EngineError(f"{self.dist.name} did not answer within {START_TIMEOUT:.0f}s")

    def server_version(self) -> str:
        return server_version(self.url)

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


@contextlib.contextmanager
def nodes(count: int, *, heap: str = "256m") -> Iterator[list[Engine]]:
    """A cluster of ``count`` Elasticsearch nodes on loopback, each eligible as master; the
    block gets them once all have joined."""
    ports = [(_free_port(), _free_port()) for _ in range(count)]
    names = [f"node-{n}" for n in range(count)]
    seeds = ",".join(f"127.0.0.1:{transport}" for _, transport in ports)
    engines = [Engine(heap=heap) for _ in range(count)]
    try:
        for engine, name, (port, transport) in zip(engines, names, ports, strict=True):
            engine.launch(
                (
                    "cluster.name=auditwire-test",
                    f"node.name={name}",
                    f"discovery.seed_hosts={seeds}",
                    f"cluster.initial_master_nodes={','.join(names)}",
                ),
                port=port,
                transport=transport,
            )
        for engine in engines:
            engine._wait(nodes=count)
        yield engines
    finally:
        for engine in engines:
            engine.stop()


@contextlib.contextmanager
def cluster(url: str | None = None, *, heap: str = "1g") -> Iterator[str]:
    """``url`` if given, else the URL of an Elasticsearch started for the block (benchmarks)."""
    if url is not None:
        yield url
        return
    engine = Engine(heap=heap)
    try:
        yield engine.start()
    finally:
        engine.stop()


if __name__ == "__main__":
    import sys

    engine = Engine(OPENSEARCH if sys.argv[1:] == ["opensearch"] else ELASTICSEARCH)
    print("starting", engine.dist.name, engine.dist.version, "...", flush=True)
    url = engine.start()
    print(f"{engine.dist.name} {engine.server_version()} at {url} (Ctrl-C stops it)", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        engine.stop()
