"""Tamper evidence: what sealing adds to each record, and how fast a store verifies.

    python bench/integrity.py [--records 100000] [--es-url URL]

Sealing: the wall-clock cost per record of :meth:`auditwire.seal.Chain.seal` on a request's
record, in batches of 64 as the hand-off writes them, beside the cost of encoding the same
record as the ECS document the spool holds (the reference: what every record already pays on
that path). The deterministic figure is the instruction count of the production path with and
without sealing (``icount`` below).

Verification: four writers write ``--records`` records with checkpoints every 10,000 records
each to a fresh SQLite file and to Elasticsearch (the test engine, started here, unless
``--es-url`` names a cluster); then :func:`auditwire.integrity.verify.verify` reads and checks
every chain, reported in records per second beside the rate of merely reading the same records
in chain order (the reference: the store's own reading speed).

The instruction counts (from the project's root)::

    .venv/bin/python ../shared/bench/icount.py wsgi bare \\
        'spooled=bench.icount_factories:wsgi_spool' \\
        'unsealed=bench.icount_factories:wsgi_spool_unsealed'
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import timeit
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.engine import cluster  # noqa: E402

from auditwire import AuditLog, AuditRecord, SQLiteStore  # noqa: E402
from auditwire.ecs import to_ecs  # noqa: E402
from auditwire.integrity import Integrity, IntegrityKey, Keyring  # noqa: E402
from auditwire.integrity.verify import verify  # noqa: E402
from auditwire.record import Actor, DeviceInfo, RequestInfo  # noqa: E402
from auditwire.seal import Chain  # noqa: E402
from auditwire.stores.base import Chained  # noqa: E402

RING = Keyring([IntegrityKey.hmac("a benchmark's secret key", "bench")])
WRITERS = 4
BATCH = 1000


def request_record(n: int) -> AuditRecord:
    """A record as the middleware makes one for a login."""
    return AuditRecord(
        action="login",
        category="authentication",
        actor=Actor(id=f"usr_{n % 5000}", email=f"user{n % 5000}@example.com"),
        ip_address=f"203.0.113.{n % 250}",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0",
        tenant=f"tenant-{n % 20}",
        request=RequestInfo(
            id=f"req-{n}",
            method="POST",
            route="/login",
            path="/login",
            status=200,
            duration_ms=12.5,
            peer_ip="10.1.2.3",
        ),
        device=DeviceInfo(browser="Chrome", browser_version="120.0", os="Linux"),
        metadata={"method": "password"},
        message=f"user{n % 5000}@example.com logged in",
    )


def sealing_cost(rounds: int = 200) -> None:
    import orjson

    batch = [request_record(n) for n in range(64)]
    chain = Chain("auditwire")
    seal = [timeit.timeit(lambda: chain.seal(batch), number=1) / 64 * 1e6 for _ in range(rounds)]
    encode = [
        timeit.timeit(lambda: [orjson.dumps(to_ecs(r)) for r in batch], number=1) / 64 * 1e6
        for _ in range(rounds)
    ]
    print(f"sealing, per record:           p50 {statistics.median(seal):5.2f} µs")
    print(f"ECS encoding (reference):      p50 {statistics.median(encode):5.2f} µs")


def fill(logs: list[AuditLog], records: int) -> None:
    """``records`` records from the writers in turn, a checkpoint every 10,000 of each."""
    written = 0
    per_writer = [0] * len(logs)
    while written < records:
        for index, log in enumerate(logs):
            count = min(BATCH, records - written)
            if count <= 0:
                break
            log.write([request_record(written + n) for n in range(count)])
            written += count
            per_writer[index] += count
            if per_writer[index] % 10_000 == 0:
                log.sealer.checkpoint()
    for log in logs:
        log.close()


def rates(name: str, store: Chained, records: int) -> None:
    started = time.perf_counter()
    read = sum(1 for _ in store.chain())
    reading = time.perf_counter() - started
    verified = []
    for workers in (1, 2):
        started = time.perf_counter()
        report = verify(store, keyring=RING, workers=workers)
        verified.append(report.records / (time.perf_counter() - started))
        assert report.ok, report.text()
        assert report.records == read >= records
    print(
        f"{name:<14} {read:>8,} records in {len(report.writers)} chains: verified "
        f"{verified[0]:>7,.0f}/s in one process, {verified[1]:>7,.0f}/s in two; "
        f"read only (reference) {read / reading:>7,.0f}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--es-url", help="an Elasticsearch to use instead of starting one")
    args = parser.parse_args()
    integrity = Integrity(keyring=RING, interval=3600)

    sealing_cost()

    path = Path(tempfile.mkdtemp()) / "audit.db"
    fill([AuditLog(f"sqlite:///{path}", integrity=integrity) for _ in range(WRITERS)], args.records)
    rates("SQLite", SQLiteStore(path, readonly=True), args.records)

    from elasticsearch import Elasticsearch
    from elasticsearch.serializer import OrjsonSerializer

    from auditwire.stores.elasticsearch import ElasticsearchStore

    with cluster(args.es_url) as url:
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        # The client a store URL makes: answers read through orjson.
        client = Elasticsearch(url, serializer=OrjsonSerializer(), request_timeout=120)
        store = ElasticsearchStore(client, prefix=prefix)
        store.setup()
        spool = tempfile.mkdtemp()
        logs = [AuditLog(store, spool=spool, integrity=integrity) for _ in range(WRITERS)]
        fill(logs, args.records)
        store.refresh_indices()
        try:
            rates("Elasticsearch", store, args.records)
        finally:
            client.indices.delete(index=",".join(client.indices.get(index=f"{prefix}-*")))
            client.indices.delete_index_template(name=prefix)


if __name__ == "__main__":
    main()
