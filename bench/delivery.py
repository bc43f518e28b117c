"""Delivery throughput against the client's own ``helpers.streaming_bulk``, and memory while
the cluster is down.

    python bench/delivery.py [--records 50000] [--rounds 5] [--es-url URL]

In each round both deliver the same records to fresh indices of the same cluster (the test
engine, started here, unless ``--es-url`` names one), in alternating order:

- ``streaming_bulk``: the records' ECS documents as ``create`` actions, chunks of 500 — what
  a hand-written shipper would do, without a spool, retries or durability — with the client's
  default serializer and with its ``OrjsonSerializer``;
- auditwire: the records written to a :class:`~auditwire.delivery.Delivery` in batches of 500
  (as the capture hand-off does) and timed until ``flush()`` says every one is delivered —
  through the spool on disk, in batches of 500.

Reports records per second (median over the rounds) and the ratio. Then, in a child process,
records are written to a pipeline whose cluster is unreachable, and the peak RSS is reported
as the spool grows: records wait on disk, not in memory.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.support.engine import cluster  # noqa: E402

from auditwire import AuditRecord  # noqa: E402
from auditwire.delivery.pipeline import Delivery  # noqa: E402
from auditwire.ecs import to_ecs  # noqa: E402
from auditwire.stores.elasticsearch import ElasticsearchStore  # noqa: E402
from auditwire.stores.index_template import write_index  # noqa: E402
from bench.query import generate  # noqa: E402

BATCH = 500


def chunks(records: list[AuditRecord]) -> Iterator[list[AuditRecord]]:
    for start in range(0, len(records), BATCH):
        yield records[start : start + BATCH]


def fresh_store(url: str, prefix: str, *, orjson: bool = False) -> ElasticsearchStore:
    from elasticsearch import Elasticsearch
    from elasticsearch.serializer import OrjsonSerializer

    options: dict[str, Any] = {"serializer": OrjsonSerializer()} if orjson else {}
    store = ElasticsearchStore(Elasticsearch(url, request_timeout=120, **options), prefix=prefix)
    store.setup()
    return store


def drop(store: ElasticsearchStore) -> int:
    store.refresh_indices()
    count = store.count()
    names = list(store.client.indices.get(index=store.read_pattern).body)
    if names:
        store.client.indices.delete(index=",".join(names))
    store.client.indices.delete_index_template(name=store.prefix)
    return count


def run_streaming_bulk(
    url: str, records: list[AuditRecord], prefix: str, *, orjson: bool = False
) -> float:
    from elasticsearch import helpers

    store = fresh_store(url, prefix, orjson=orjson)
    started = time.perf_counter()
    actions = (
        {
            "_op_type": "create",
            "_index": write_index(store.prefix, r.timestamp),
            "_id": r.id,
            "_source": to_ecs(r),
        }
        for r in records
    )
    done = sum(ok for ok, _ in helpers.streaming_bulk(store.client, actions, chunk_size=BATCH))
    elapsed = time.perf_counter() - started
    assert done == len(records) == drop(store), "streaming_bulk lost records"
    return len(records) / elapsed


def run_auditwire(url: str, records: list[AuditRecord], prefix: str, spool: Path) -> float:
    store = fresh_store(url, prefix)
    delivery = Delivery(store, spool / prefix, batch_size=BATCH)
    started = time.perf_counter()
    for chunk in chunks(records):
        delivery.write(chunk)
    assert delivery.flush(timeout=600)
    elapsed = time.perf_counter() - started
    delivered = delivery.stats().delivered
    assert delivered == len(records) == drop(store), "auditwire lost records"
    delivery.close()
    return len(records) / elapsed


DOWN = """
import resource, sys, tempfile
sys.path[:0] = [{root!r}, {src!r}]
from auditwire.delivery.pipeline import Delivery
from auditwire.stores.elasticsearch import ElasticsearchStore
from bench.query import generate
spool = tempfile.mkdtemp(prefix="auditwire-bench-down-")
delivery = Delivery(ElasticsearchStore("http://127.0.0.1:9"), spool)
written, batch = 0, []
for record in generate({total}, seed=3):
    batch.append(record)
    if len(batch) == 500:
        delivery.write(batch)
        written += len(batch)
        batch = []
        if written % {step} == 0:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(written, delivery.stats().spooled_bytes, round(rss, 1), flush=True)
delivery.close(timeout=0)
"""


def compare(url: str, args: argparse.Namespace) -> None:
    records = list(generate(args.records, seed=2))
    spool = Path(tempfile.mkdtemp(prefix="auditwire-bench-spool-"))
    rates: dict[str, list[float]] = {"streaming_bulk": [], "orjson": [], "auditwire": []}
    warm = records[: min(len(records), 5_000)]  # the cluster's JIT warms up on both paths
    run_streaming_bulk(url, warm, "bench-delivery-warm-a")
    run_auditwire(url, warm, "bench-delivery-warm-b", spool)
    for n in range(args.rounds):
        order = list(rates) if n % 2 == 0 else list(reversed(rates))
        for name in order:
            prefix = f"bench-delivery-{name.replace('_', '-')}-{n}"
            if name == "auditwire":
                rates[name].append(run_auditwire(url, records, prefix, spool))
            else:
                rate = run_streaming_bulk(url, records, prefix, orjson=name == "orjson")
                rates[name].append(rate)
        print(f"round {n + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()))
    base = statistics.median(rates["streaming_bulk"])
    fast = statistics.median(rates["orjson"])
    ours = statistics.median(rates["auditwire"])
    print(
        f"\n{args.records:,} records, {args.rounds} rounds, median records/s delivered:\n"
        f"  helpers.streaming_bulk                     {base:10,.0f}\n"
        f"  helpers.streaming_bulk, OrjsonSerializer   {fast:10,.0f}\n"
        f"  auditwire Delivery (spooled)               {ours:10,.0f}"
        f"   ({ours / base:.0%} of streaming_bulk, {ours / fast:.0%} of the orjson one)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--down-records", type=int, default=400_000)
    parser.add_argument("--es-url")
    args = parser.parse_args()

    with cluster(args.es_url) as url:
        compare(url, args)

    step = max(BATCH, args.down_records // 4 // BATCH * BATCH)
    code = DOWN.format(root=str(ROOT), src=str(ROOT / "src"), total=args.down_records, step=step)
    print("\ncluster unreachable: records written, spooled MiB, peak RSS MiB")
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            written, spooled, rss = line.split()
            print(f"  {int(written):>9,}  {int(spooled) / 2**20:10.1f}  {float(rss):8.1f}")
    here = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  (this process, holding {args.records:,} records for the rounds: {here:.0f} MiB)")


if __name__ == "__main__":
    main()
