"""Per-request cost of auditwire's middleware against references, measured in one run.

    python bench/middleware.py [--rounds 15] [--requests 2000] [--pipeline 2000] [--cluster [URL]]
    python bench/middleware.py --instructions [PATH/TO/icount.py]

Three settings, each over the variants of ``bench/apps.py`` (bare, minimal audit middleware,
the floor of a Python-built record, auditwire, OpenTelemetry):

1. ASGI in-process: a minimal Starlette app called directly with an ASGI scope, no server.
2. ASGI under uvicorn and WSGI under gunicorn (gthread, one worker, one thread): one server
   process per variant, fed pipelined HTTP/1.1 requests on one keep-alive connection, so the
   client's own cost is a single write and read per batch and the time per request is the
   server's.
3. WSGI in-process: a minimal Flask app called with a WSGI environ.

With ``--cluster``, two more variants run under uvicorn, delivering to Elasticsearch (the test
engine, started here, or ``URL``) with the delivery thread and with ``AsyncDelivery``.

``--instructions`` counts instead of timing: CPU instructions per request under valgrind's
callgrind, through the ``icount.py`` yardstick (default ``../shared/bench/icount.py`` beside the
project), for ASGI (Starlette) and WSGI (Flask) in-process: ``bare``, ``ref`` (its reference
audit stub: trusted-proxy client IP, user agent, status, a dict with an id and a timestamp into
a deque), auditwire with records discarded and spooled (``bench/icount_factories.py``), the
spooled variant on the pure-Python path (``bench/icount_pure.py``: no native encoder) and
OpenTelemetry. The same figure on a busy or an idle machine; it takes about a quarter of an
hour.

Variants run interleaved round by round (machines here are noisy); the report shows medians
and overheads over ``bare``. Two measures each:

- in-process: wall time per request until every record is built and handed to the sink (each
  round ends with a flush of the hand-off, inside the timing), and the process's CPU time per
  request, all threads included;
- under a server: wall time per request of the pipelined batch, and the server process's CPU
  time per request once it is idle again (so it includes building the records).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import functools
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.engine import cluster  # noqa: E402

from bench.apps import CLUSTER_VARIANTS, VARIANTS, asgi_app, wsgi_app  # noqa: E402

HEADERS = [
    (b"host", b"bench"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"),
    (b"accept", b"*/*"),
]


def _flush(app: Any) -> None:
    """Wait until every record is built and handed to the sink (delivery is not measured
    here: ``bench/delivery.py`` does that)."""
    audit_log = getattr(app, "audit_log", None)
    if audit_log is not None:
        audit_log.handoff.flush(timeout=60)


def asgi_round(app: Any, requests: int) -> tuple[float, float]:
    """Seconds per request for one round of in-process calls: wall time until every record is
    built and handed to the sink, and CPU time of the process (all threads)."""
    base = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/users/42", "raw_path": b"/users/42", "query_string": b"",
        "root_path": "", "headers": HEADERS, "client": ("203.0.113.9", 5000),
        "server": ("bench", 80),
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    async def run() -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(requests):
            await app(dict(base), receive, send)
        _flush(app)
        return (time.perf_counter() - start) / requests, (time.process_time() - cpu) / requests

    return asyncio.run(run())


def wsgi_round(app: Any, requests: int) -> tuple[float, float]:
    environ_base = {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/users/42", "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "bench", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.9", "HTTP_HOST": "bench",
        "HTTP_USER_AGENT": HEADERS[1][1].decode(), "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False,
        "wsgi.run_once": False, "wsgi.version": (1, 0),
    }  # fmt: skip

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(requests):
        environ = dict(environ_base)
        environ["wsgi.input"] = io.BytesIO(b"")
        body = app(environ, start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    _flush(app)
    return (time.perf_counter() - start) / requests, (time.process_time() - cpu) / requests


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


SERVERS = {
    "uvicorn": [
        "-m", "uvicorn", "bench.apps:app", "--port", "{port}", "--log-level", "warning",
        "--no-access-log", "--lifespan", "on",
    ],
    # One worker process with one thread: the per-request cost, not parallelism.
    "gunicorn": [
        "-m", "gunicorn", "bench.apps:wsgi", "--bind", "127.0.0.1:{port}", "--worker-class",
        "gthread", "--workers", "1", "--threads", "1", "--keep-alive", "60",
        "--log-level", "warning",
    ],
}  # fmt: skip


class Server:
    """One server process (uvicorn or gunicorn) serving the bench app for a variant."""

    def __init__(self, kind: str, variant: str) -> None:
        self.port = _free_port()
        env = {**os.environ, "VARIANT": variant, "BENCH_SERVER": kind, "PYTHONPATH": str(ROOT)}
        arguments = [a.format(port=self.port) for a in SERVERS[kind]]
        self.process = subprocess.Popen([sys.executable, *arguments], env=env, cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{kind} for {variant} did not start")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process and its children (gunicorn's worker
        is a child of its arbiter)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total = 0
        for process in (str(pid), *children):
            try:
                stat = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += int(stat[11]) + int(stat[12])
        return total / os.sysconf("SC_CLK_TCK")

    def settled_cpu(self) -> float:
        """CPU time once the process has gone idle (its writer has built what it was given)."""
        last = self.cpu_seconds()
        while True:
            time.sleep(0.2)
            now = self.cpu_seconds()
            if now - last < 0.005:
                return now
            last = now

    def round(self, requests: int) -> tuple[float, float]:
        """Wall time per request of a pipelined batch, and the server's CPU time per request
        including the work its writer finishes after the batch."""
        request = (
            b"GET /users/42 HTTP/1.1\r\nHost: bench\r\nUser-Agent: " + HEADERS[1][1] + b"\r\n\r\n"
        )
        cpu = self.settled_cpu()
        with socket.create_connection(("127.0.0.1", self.port)) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            start = time.perf_counter()
            conn.sendall(request * requests)
            seen = 0
            buffer = b""
            while seen < requests:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("server closed the connection")
                buffer += chunk
                seen += chunk.count(b"HTTP/1.1 200")
                buffer = buffer[-16:]
            elapsed = (time.perf_counter() - start) / requests
        return elapsed, (self.settled_cpu() - cpu) / requests

    def stop(self) -> None:
        self.process.terminate()  # lifespan shutdown flushes, for a while if nothing delivers
        self.process.wait(timeout=60)


Sample = tuple[float, float]


def measure(rounds: int, runners: dict[str, Callable[[], Sample]]) -> dict[str, list[Sample]]:
    results: dict[str, list[Sample]] = {v: [] for v in runners}
    for runner in runners.values():  # warm-up: caches, lazy imports, the writer thread
        runner()
    for index in range(rounds):
        order = list(runners) if index % 2 == 0 else list(reversed(runners))
        for variant in order:
            results[variant].append(runners[variant]())
    return results


def report(name: str, results: dict[str, list[Sample]], *, second: str = "CPU µs") -> list[str]:
    """Medians per variant of both measures, and their overheads over ``bare``."""
    first = {v: statistics.median(s[0] for s in r) * 1e6 for v, r in results.items()}
    other = {v: statistics.median(s[1] for s in r) * 1e6 for v, r in results.items()}
    lines = [
        f"\n{name}",
        f"  {'variant':<15} {'µs/request':>11} {'overhead':>9} {second:>16} {'overhead':>9}",
    ]
    for variant in results:
        line = f"  {variant:<15} {first[variant]:11.1f} "
        line += f"{first[variant] - first['bare']:9.1f}" if variant != "bare" else " " * 9
        line += f" {other[variant]:16.1f} "
        line += f"{other[variant] - other['bare']:9.1f}" if variant != "bare" else ""
        lines.append(line)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2000, help="per in-process round")
    parser.add_argument("--pipeline", type=int, default=2000, help="per uvicorn round")
    parser.add_argument(
        "--cluster",
        nargs="?",
        const="start",
        help="also deliver to Elasticsearch under uvicorn: the test engine, started here, or URL",
    )
    parser.add_argument(
        "--instructions",
        nargs="?",
        const=str(ROOT.parent / "shared" / "bench" / "icount.py"),
        metavar="ICOUNT",
        help="count instructions per request under callgrind with this icount.py instead",
    )
    args = parser.parse_args()
    if args.instructions:
        print("\n".join(instructions(Path(args.instructions))))
        return
    with contextlib.ExitStack() as stack:
        # The spooled variants' spools, servers' included.
        os.environ["AUDITWIRE_SPOOL"] = stack.enter_context(
            tempfile.TemporaryDirectory(prefix="auditwire-bench-")
        )
        if args.cluster:
            url = None if args.cluster == "start" else args.cluster
            os.environ["BENCH_ES_URL"] = stack.enter_context(cluster(url))
        run(args)


#: What ``--instructions`` counts, as icount.py's variant specifications (``%s``: asgi/wsgi).
COUNTED = (
    ("bare", "bare"),
    ("ref", "ref"),
    ("auditwire, records discarded", "auditwire=bench.icount_factories:%s_discard"),
    ("auditwire, records spooled (production)", "auditwire+spool=bench.icount_factories:%s_spool"),
    ("the same, pure Python (no native encoder)", "pure+spool=bench.icount_pure:%s_spool"),
    ("OpenTelemetry", "otel"),
)


def count_instructions(icount: Path, kind: str) -> dict[str, float]:
    """Instructions per request of each :data:`COUNTED` variant of ``kind``, by ``icount.py``."""
    specs = [spec.replace("%s", kind) for _, spec in COUNTED]
    out = subprocess.run(
        [sys.executable, str(icount), kind, *specs],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures = {}
    for line in out.splitlines():
        name, _, rest = line.strip().partition(" ")
        if rest.strip().endswith("instructions/request"):
            figures[name] = float(rest.split()[0].replace(",", ""))
    return figures


def instructions(icount: Path) -> list[str]:
    """The ``--instructions`` report: ASGI and WSGI counted side by side (one valgrind each,
    on the two cores), each variant over bare and as a multiple of ``ref``'s overhead."""
    if not icount.is_file():
        raise SystemExit(f"--instructions: no icount.py at {icount}")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        kinds = {k: pool.submit(count_instructions, icount, k) for k in ("asgi", "wsgi")}
        counted = {k: f.result() for k, f in kinds.items()}
    lines = [
        f"python {sys.version.split()[0]}: instructions per request (callgrind); the others over"
        " bare, and as a multiple of ref's overhead",
        f"{'':<42}{'ASGI (Starlette)':>22}{'WSGI (Flask)':>22}",
    ]
    for title, spec in COUNTED:
        name = spec.partition("=")[0]
        cells = []
        for kind in ("asgi", "wsgi"):
            per = counted[kind]
            over, ref = per[name] - per["bare"], per["ref"] - per["bare"]
            cells.append(
                f"{per[name] / 1000:,.1f}k"
                if name == "bare"
                else f"{over / 1000:+,.1f}k ({over / ref:.2f}x)"
            )
        lines.append(f"{title:<42}{cells[0]:>22}{cells[1]:>22}")
    return lines


def run(args: argparse.Namespace) -> None:
    lines = [f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.rounds} rounds"]

    apps = {v: asgi_app(v) for v in VARIANTS}
    asgi = measure(
        args.rounds,
        {v: functools.partial(asgi_round, a, args.requests) for v, a in apps.items()},
    )
    lines += report("ASGI in-process (Starlette)", asgi)

    for kind, title in (
        ("uvicorn", "ASGI under uvicorn (Starlette, pipelined keep-alive)"),
        ("gunicorn", "WSGI under gunicorn (Flask, gthread, pipelined keep-alive)"),
    ):
        variants = VARIANTS + (CLUSTER_VARIANTS if kind == "uvicorn" and args.cluster else ())
        servers = {v: Server(kind, v) for v in variants}
        try:
            served = measure(
                args.rounds,
                {v: functools.partial(s.round, args.pipeline) for v, s in servers.items()},
            )
        finally:
            for server in servers.values():
                server.stop()
        lines += report(title, served, second="server CPU µs")

    wsgi_apps = {v: wsgi_app(v) for v in VARIANTS}
    wsgi = measure(
        args.rounds,
        {v: functools.partial(wsgi_round, a, args.requests) for v, a in wsgi_apps.items()},
    )
    lines += report("WSGI in-process (Flask)", wsgi)
    for app in (*apps.values(), *wsgi_apps.values()):
        if hasattr(app, "audit_log"):
            app.audit_log.close()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
