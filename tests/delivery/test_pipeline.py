"""Delivery to the real Elasticsearch through faults: the cluster away, busy, slow, refusing
documents, and the writing process killed. The faults come from a loopback proxy the tests own
(``tests/support/proxy.py``) and from the cluster itself (blocks, a conflicting mapping)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from elasticsearch import Elasticsearch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from auditwire import Actor, AuditLog
from auditwire.asgi import AuditMiddleware
from auditwire.delivery.pipeline import Backoff, Delivery
from auditwire.delivery.spool import Spool
from auditwire.stores.elasticsearch import ElasticsearchStore
from tests.support.proxy import FaultProxy

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
FAST_RETRY = Backoff(initial=0.05, maximum=0.5)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def proxy(es_url: str) -> Iterator[FaultProxy]:
    parts = urlsplit(es_url)
    fault_proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 9200)
    yield fault_proxy
    fault_proxy.close()


@pytest.fixture
def direct(es_store: ElasticsearchStore) -> ElasticsearchStore:
    """The test's indices read without the proxy in the way."""
    return es_store


def through(proxy: FaultProxy, prefix: str) -> ElasticsearchStore:
    client = Elasticsearch(proxy.url, request_timeout=5)
    return ElasticsearchStore(client, prefix=prefix)


def pipeline(store: ElasticsearchStore, spool: Path, **options: object) -> AuditLog:
    delivery = Delivery(store, Spool(spool), backoff=FAST_RETRY, **options)  # type: ignore[arg-type]
    return AuditLog(delivery)


def all_ids(store: ElasticsearchStore) -> list[str]:
    """Every record id in the test's indices, duplicates kept, read by ``search_after``."""
    store.refresh_indices()
    out: list[str] = []
    after: list[str] | None = None
    while True:
        hits = store.client.search(
            index=store.read_pattern,
            size=5_000,
            sort=[{"event.id": "asc"}],
            source=False,
            docvalue_fields=[{"field": "event.id"}],
            search_after=after,
        )["hits"]["hits"]
        if not hits:
            return out
        out.extend(hit["fields"]["event.id"][0] for hit in hits)
        after = hits[-1]["sort"]


def test_records_are_spooled_then_delivered(direct: ElasticsearchStore, tmp_path: Path) -> None:
    log = AuditLog(direct, spool=tmp_path)
    assert isinstance(log.sink, Delivery)
    records = [log.record("login", actor=Actor(id=f"u{n}")) for n in range(300)]
    assert log.flush(timeout=60)
    assert sorted(all_ids(direct)) == sorted(r.id for r in records)
    stats = log.stats()
    assert (stats.accepted, stats.delivered, stats.dead_lettered) == (300, 300, 0)
    assert stats.spooled_bytes == 0 and stats.lag_seconds == 0.0
    assert log.get(records[0].id) == records[0]
    log.close()
    assert not list(tmp_path.rglob("*.seg"))  # delivered segments are gone


def test_the_clients_request_lines_about_delivery_stay_out_of_an_info_log(
    direct: ElasticsearchStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An application logging at INFO sees no line per bulk request of the delivery worker,
    while its own calls through the client still log as ever."""
    caplog.set_level(logging.INFO)
    log = AuditLog(direct, spool=tmp_path)
    try:
        for n in range(3):
            log.record("login", actor=Actor(id=f"u{n}"))
            assert log.flush(timeout=30)
        assert log.stats().delivered == 3
    finally:
        log.close()
    direct.client.count(index=direct.read_pattern)  # the application's own call
    lines = [r for r in caplog.records if r.name.startswith("elastic_transport")]
    assert [r.threadName for r in lines if "_bulk" in r.getMessage()] == []
    assert any("_count" in r.getMessage() and r.levelno == logging.INFO for r in lines)


def test_ten_thousand_records_while_the_cluster_is_away_all_arrive_once(
    proxy: FaultProxy, direct: ElasticsearchStore, tmp_path: Path
) -> None:
    log = pipeline(through(proxy, direct.prefix), tmp_path)
    proxy.set_mode("down")
    accepted = [log.record("login", actor=Actor(id=f"u{n}")).id for n in range(10_000)]
    time.sleep(3)  # away for several seconds: the pipeline keeps retrying meanwhile
    stats = log.stats()
    assert stats.delivered == 0 and stats.delivery_failures > 0
    assert stats.spooled_bytes > 0 and stats.lag_seconds > 2
    assert "unreachable" in str(stats.last_error)
    proxy.set_mode("forward")
    assert log.flush(timeout=120)
    ids = all_ids(direct)
    assert len(ids) == 10_000
    assert set(ids) == set(accepted)
    assert log.stats().delivered == 10_000
    log.close()


def test_a_busy_cluster_answering_429_is_retried_to_completion(
    proxy: FaultProxy, direct: ElasticsearchStore, tmp_path: Path
) -> None:
    log = pipeline(through(proxy, direct.prefix), tmp_path, batch_size=50)
    proxy.set_mode("busy", busy_requests=6)
    accepted = [log.record("login", actor=Actor(id=f"u{n}")).id for n in range(500)]
    assert log.flush(timeout=60)
    assert proxy.busy_answered == 6
    assert sorted(all_ids(direct)) == sorted(accepted)
    stats = log.stats()
    assert stats.retried >= 6 * 50 // 50  # at least one resend per 429
    assert "429" in str(stats.last_error)
    log.close()


def test_only_the_entries_that_failed_are_resent_and_refused_ones_are_dead_lettered(
    direct: ElasticsearchStore, tmp_path: Path
) -> None:
    """One batch, four fates: an index under a flood-stage block answers 429 per entry, an
    index under a write block 403 (both retried until the block goes), an index whose mapping
    conflicts refuses for good (dead letter), the rest is written at once."""
    client = direct.client
    blocks = {
        f"{direct.prefix}-2023.05": "index.blocks.read_only_allow_delete",
        f"{direct.prefix}-2023.06": "index.blocks.write",
    }
    conflicting = f"{direct.prefix}-2022.02"
    for index, block in blocks.items():
        client.indices.create(index=index)
        client.indices.put_settings(index=index, settings={block: True})
    client.indices.create(
        index=conflicting,
        mappings={"properties": {"user": {"properties": {"id": {"type": "long"}}}}},
    )

    def when(year: int, month: int) -> datetime:
        return datetime(year, month, 3, tzinfo=timezone.utc)

    # A long linger: all twelve records go in one batch, whatever the machine's pauses.
    log = pipeline(direct, tmp_path / "spool", dead_letter=tmp_path / "dead.ndjson", linger=1.0)
    fine = [log.record("login", actor=Actor(id=f"u{n}"), timestamp=when(2024, 1)) for n in range(5)]
    held = [
        log.record("login", actor=Actor(id=f"h{n}"), timestamp=when(2023, month))
        for n in range(3)
        for month in (5, 6)
    ]
    refused = log.record("login", actor=Actor(id="not-a-number"), timestamp=when(2022, 2))
    deadline = time.monotonic() + 30
    while log.stats().delivered < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = log.stats()
    assert (stats.delivered, stats.dead_lettered) == (5, 1)
    assert stats.retried >= 6  # the six blocked entries, not the whole batch
    assert not log.flush(timeout=0.5)  # held back by the blocks
    for index, block in blocks.items():
        client.indices.put_settings(index=index, settings={block: None})
    assert log.flush(timeout=30)
    assert sorted(all_ids(direct)) == sorted(r.id for r in [*fine, *held])
    (line,) = (tmp_path / "dead.ndjson").read_text().splitlines()
    assert refused.id in line and "400" in line and "user.id" in line
    log.close()


def test_a_slow_cluster_does_not_slow_requests(
    proxy: FaultProxy, direct: ElasticsearchStore, tmp_path: Path
) -> None:
    """While the cluster answers nothing at all, requests are served and their records wait
    in the spool; every one is delivered once the cluster answers again."""

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hi")

    log = pipeline(through(proxy, direct.prefix), tmp_path)
    app = AuditMiddleware(Starlette(routes=[Route("/hello", hello)]), log)
    proxy.set_mode("hold")

    async def serve() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return [(await client.get("/hello")).status_code for _ in range(200)]

    import anyio

    statuses = anyio.run(serve)
    assert statuses == [200] * 200
    assert log.handoff.flush(timeout=30)  # every record built and in the spool...
    assert log.stats().delivered == 0  # ...while the cluster still has not answered
    proxy.set_mode("forward")
    assert log.flush(timeout=60)
    assert len(set(all_ids(direct))) == 200
    log.close()


CHILD = textwrap.dedent(
    """
    import sys
    from auditwire import Actor, AuditLog
    from auditwire.stores.elasticsearch import ElasticsearchStore

    url, prefix, spool, mode = sys.argv[1:5]
    log = AuditLog(ElasticsearchStore(url, prefix=prefix), spool=spool)
    if mode == "replay":
        assert log.flush(timeout=120), log.stats()
        log.close()
        print(log.stats().replayed_journals, flush=True)
        sys.exit(0)
    n = 0
    while True:
        record = log.record("login", actor=Actor(id=f"u{n}"))
        sys.stdout.write(record.id + "\\n")
        sys.stdout.flush()
        n += 1
    """
)


def run_child(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE, text=True, env=env
    )


@pytest.mark.parametrize("cluster", ["reachable", "away"])
def test_a_killed_writer_s_spool_is_replayed_by_the_next_start(
    proxy: FaultProxy, direct: ElasticsearchStore, tmp_path: Path, cluster: str
) -> None:
    if cluster == "away":
        proxy.set_mode("down")
    child = run_child(proxy.url, direct.prefix, str(tmp_path), "write")
    assert child.stdout is not None
    accepted = []
    for line in child.stdout:
        accepted.append(line.strip())
        if len(accepted) == 3_000:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    proxy.set_mode("forward")
    replay = run_child(proxy.url, direct.prefix, str(tmp_path), "replay")
    out, _ = replay.communicate(timeout=180)
    assert replay.returncode == 0
    assert out.strip() == "1"  # the killed writer's journal
    ids = all_ids(direct)
    assert len(ids) == len(set(ids))  # none twice
    assert set(accepted) <= set(ids)  # none that record() accepted is missing
    assert not list(tmp_path.rglob("*.seg"))


def test_a_full_spool_refuses_record_whole_and_says_why(tmp_path: Path) -> None:
    """The cluster unreachable (nothing listens on port 9) and the spool at its cap: record()
    raises the spool's error, and what was accepted before is still there to deliver."""
    from auditwire.delivery.spool import SpoolFullError

    unreachable = ElasticsearchStore("http://127.0.0.1:9")
    log = AuditLog(Delivery(unreachable, Spool(tmp_path, max_bytes=20_000), backoff=FAST_RETRY))
    accepted: list[str] = []

    def record_until_full() -> None:
        while len(accepted) < 1_000:
            accepted.append(log.record("login", actor=Actor(id=f"u{len(accepted)}")).id)

    with pytest.raises(SpoolFullError, match=r"is full: .* the cap is 20,000 bytes") as caught:
        record_until_full()
    assert str(tmp_path) in str(caught.value)
    stats = log.stats()
    assert stats.accepted == len(accepted) > 0 and stats.delivered == 0
    assert 0 < stats.spooled_bytes <= 20_000
    log.close()  # returns at once while the cluster is unreachable
    (orphan,) = Spool(tmp_path).orphans()
    assert len(orphan.read(orphan.acked, 10_000, 10**9)) == len(accepted)
    orphan.close()


def test_a_lock_held_at_fork_time_does_not_hang_the_child(tmp_path: Path) -> None:
    """A pre-forking server may fork while a worker thread holds the pipeline's lock; the
    child's first record must not wait for a thread that does not exist there."""
    import warnings

    log = AuditLog(Delivery(ElasticsearchStore("http://127.0.0.1:9"), Spool(tmp_path)))
    log.record("login")
    sink = log.sink
    assert isinstance(sink, Delivery)
    with sink._lock, sink.spool._lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # forking a threaded process
        pid = os.fork()
        if pid == 0:  # the child: record once, exit without running the test's teardown
            code = 1
            try:
                log.record("login", actor=Actor(id="from-the-child"))
                code = 0
            finally:
                os._exit(code)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on a lock held at fork time")
    log.close()


@pytest.mark.parametrize("product", ["elasticsearch", "opensearch"])
def test_forked_children_deliver_over_connections_of_their_own(
    product: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A pre-forking server's workers inherit the parent's open connections to the cluster.
    Shared, their requests interleave on one socket and each reads the others' answers
    (seen: every child's batches failed with another's bulk answer, one waited out its
    timeout); each child must open its own, and deliver without a single retry."""
    import uuid
    import warnings

    from opensearchpy import OpenSearch

    from auditwire.stores.elasticsearch import OpenSearchStore

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    if product == "elasticsearch":
        store = ElasticsearchStore(Elasticsearch(request.getfixturevalue("es_url")), prefix=prefix)
    else:
        url = request.getfixturevalue("opensearch_url")
        store = OpenSearchStore(OpenSearch(url), prefix=prefix)
    store.setup()
    log = AuditLog(store, spool=tmp_path)
    log.record("login")
    assert log.flush(timeout=30)  # the parent's connection is open now
    pids = []
    for n in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # forking a threaded process
            pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for batch in range(20):
                    log.write(
                        [log.build("login", actor=Actor(id=f"{n}-{batch}-{i}")) for i in range(200)]
                    )
                stats = (log.flush(timeout=60), log.stats().retried, log.stats().last_error)
                code = 0 if stats == (True, 0, None) else 3
                log.close()
            finally:
                os._exit(code)
        pids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    log.close()
    names = list(store.client.indices.get(index=f"{prefix}-*"))
    store.client.indices.delete(index=",".join(names))
    store.client.indices.delete_index_template(name=prefix)
    assert codes == [0, 0, 0]


async def test_lifespan_shutdown_does_not_wait_out_a_failing_cluster(tmp_path: Path) -> None:
    """A server stopping while the cluster is down stops at once; the records it captured are
    in the spool for the next start."""
    unreachable = ElasticsearchStore("http://127.0.0.1:9")
    log = AuditLog(Delivery(unreachable, Spool(tmp_path), backoff=FAST_RETRY))
    app = AuditMiddleware(Starlette(), log)
    incoming: Iterator[dict[str, object]] = iter(
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    )
    sent: list[str] = []

    async def receive() -> dict[str, object]:
        return next(incoming)

    async def send(message: object) -> None:
        sent.append(message["type"])  # type: ignore[index]

    for n in range(3):
        log.submit(log.build("login", actor=Actor(id=f"u{n}")))
    started = time.monotonic()
    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert time.monotonic() - started < 5  # the flush gives up; it would wait 10 s otherwise
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    log.close()
    (orphan,) = Spool(tmp_path).orphans()
    assert len(orphan.read(orphan.acked, 10_000, 10**9)) == 3
    orphan.close()


def test_only_audit_documents_leave_the_spool(direct: ElasticsearchStore, tmp_path: Path) -> None:
    """Entries come from a file on disk; one crafted there must not delete, overwrite or
    update a stored record, nor keep delivery retrying: each is refused for good."""
    log = pipeline(direct, tmp_path / "spool", dead_letter=tmp_path / "dead.ndjson")
    kept = log.record("login", actor=Actor(id="u1"))
    assert log.flush(timeout=30)
    index = direct.client.search(index=direct.read_pattern, q=f"event.id:{kept.id}")["hits"][
        "hits"
    ][0]["_index"]
    target = json.dumps({"_index": index, "_id": kept.id})
    crafted = [
        f'{{"delete": {target}}}'.encode(),
        f'{{"index": {target}}}\n{{"event": {{"id": "{kept.id}"}}}}'.encode(),
        f'{{"update": {target}}}\n{{"doc": {{"message": "edited"}}}}'.encode(),
        direct.encode(kept) + b"\n" + direct.encode(kept),  # two actions in one entry
        f'{{"create": {{"_index": "other-index", "_id": "{kept.id}"}}}}\n{{}}'.encode(),
        b"not json at all",
    ]
    assert isinstance(log.sink, Delivery)
    log.sink.spool.append(crafted)
    later = log.record("logout", actor=Actor(id="u1"))
    assert log.flush(timeout=30)  # delivered or refused, never retried forever
    assert log.get(kept.id) == kept  # neither deleted nor changed
    assert log.get(later.id) == later
    stats = log.stats()
    assert (stats.delivered, stats.dead_lettered) == (2, len(crafted))
    reasons = [
        json.loads(line)["reason"] for line in (tmp_path / "dead.ndjson").read_text().splitlines()
    ]
    assert all(reason.startswith("not an audit document") for reason in reasons)
    log.close()
