"""What a record costs on disk: in the spool, in SQLite and in Elasticsearch.

    python bench/sizing.py [--records 200000] [--es-url URL]

Builds records as the middleware does for a mix of logins, role changes and API key
rotations — an actor, a browser's user agent, a request id, route and status, a rendered
message, some metadata — writes the same records to the spool of an Elasticsearch store (the
form they wait in), to a fresh SQLite file and to Elasticsearch (the test engine, started here,
unless ``--es-url`` names a cluster), force-merges the indices and prints bytes per record for
each. The reference is the record's own JSON (the API form), uncompressed.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from tests.support.engine import cluster  # noqa: E402

from auditwire import AuditRecord, EventCatalog, RecordBuilder, RequestInfo, SQLiteStore  # noqa: E402
from auditwire.delivery.spool import Spool  # noqa: E402
from auditwire.stores.elasticsearch import ElasticsearchStore  # noqa: E402
from bench.query import ACTIONS, T0, TENANTS  # noqa: E402

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
]


def generate(count: int, seed: int = 1) -> Iterator[AuditRecord]:
    """``count`` records as a request would make them (see the module)."""
    rng = random.Random(seed)
    builder = RecordBuilder(EventCatalog.default())
    actions = list(ACTIONS)
    for n in range(count):
        action = rng.choice(actions)
        user = rng.randrange(5000)
        yield builder.build(
            action,
            actor={"type": "user", "id": f"usr_{user}", "email": f"user{user}@example.test"},
            target={"type": "user", "id": f"usr_{rng.randrange(5000)}"} if n % 3 == 0 else None,
            outcome="failure" if action == "login_failed" else "success",
            metadata={"role": {"name": "Finance"}} if action == "user.role_edited" else {},
            ip_address=f"198.51.{rng.randrange(256)}.{rng.randrange(256)}",
            user_agent=rng.choice(BROWSERS),
            tenant=rng.choice(TENANTS),
            timestamp=T0 + timedelta(seconds=rng.randrange(90 * 86400)),
            request=RequestInfo(
                id=f"req_{n:012d}", method="POST", route="/session", path="/session",
                status=401 if action == "login_failed" else 200, duration_ms=12.5,
            ),
        )  # fmt: skip


def measure(url: str, count: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="auditwire-sizing-"))
    sqlite = SQLiteStore(workdir / "audit.db")
    es = ElasticsearchStore(url, prefix="bench-sizing")
    es.setup(replicas=0)
    spool = Spool(workdir / "spool", max_bytes=1 << 40)
    api_bytes = 0
    batch: list[AuditRecord] = []
    for record in generate(count):
        api_bytes += len(orjson.dumps(record.to_api())) + 1
        batch.append(record)
        if len(batch) == 5000:
            for sink in (sqlite, es):
                sink.write(batch)
            spool.append([es.encode(r) for r in batch])
            batch = []
    for sink in (sqlite, es):
        sink.write(batch)
    spool.append([es.encode(r) for r in batch])
    spool_bytes = spool.journal.pending_bytes()
    spool.close()
    sqlite.close()
    es.client.indices.forcemerge(index=es.read_pattern, max_num_segments=1)
    es.refresh_indices()
    stats = es.client.indices.stats(index=es.read_pattern, metric="store,docs")
    es_bytes = stats["_all"]["primaries"]["store"]["size_in_bytes"]
    docs = stats["_all"]["primaries"]["docs"]["count"]
    sqlite_bytes = sum(p.stat().st_size for p in workdir.glob("audit.db*"))
    print(f"{count:,} records ({docs:,} in Elasticsearch {es.server_version()}):")
    print(f"{'':32}{'bytes/record':>14}{'GB per 10M':>12}")
    for name, size in [
        ("record JSON (reference)", api_bytes),
        ("spool (ECS entries, framed)", spool_bytes),
        ("SQLite file", sqlite_bytes),
        ("Elasticsearch primaries", es_bytes),
    ]:
        print(f"{name:32}{size / count:>14.0f}{size / count * 1e7 / 1e9:>12.2f}")
    es.client.indices.delete(index=",".join(es.client.indices.get(index=es.read_pattern).body))
    es.client.indices.delete_index_template(name="bench-sizing")
    es.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--es-url", help="an Elasticsearch to use (default: start the test one)")
    args = parser.parse_args()
    with cluster(args.es_url) as url:
        measure(url, args.records)


if __name__ == "__main__":
    main()
