"""Delivery to a three-node cluster that loses a node mid-stream: every record arrives once.

Three nodes of the test distribution run on loopback (small heaps), each eligible as master;
the index template's ``0-1`` auto-expanding replicas give every shard a copy on a second node.
A stream of records is recorded while one node is SIGKILLed; once the cluster is yellow or
green again, every record the application recorded is stored exactly once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from auditwire import Actor, AuditLog, AuditRecord
from auditwire.delivery.pipeline import Backoff, Delivery
from auditwire.delivery.spool import Spool
from auditwire.stores.elasticsearch import ElasticsearchStore
from tests.delivery.test_pipeline import all_ids
from tests.support.engine import nodes

pytestmark = pytest.mark.integration


def test_a_node_killed_mid_stream_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    with nodes(3) as engines:
        # A bulk request waits up to a minute for a shard whose node is gone: as long here.
        client = Elasticsearch([e.url for e in engines], request_timeout=60)
        store = ElasticsearchStore(client, prefix="test-three-nodes")
        store.setup()
        delivery = Delivery(store, Spool(tmp_path / "spool"), backoff=Backoff(0.05, 1.0))
        log = AuditLog(delivery)
        recorded: list[AuditRecord] = []
        done = threading.Event()

        def stream() -> None:
            n = 0
            while not done.is_set():
                recorded.append(log.record("login", actor=Actor(id=f"u{n % 50}")))
                n += 1
                if n % 100 == 0:
                    time.sleep(0.01)

        writer = threading.Thread(target=stream)
        writer.start()
        try:
            time.sleep(3)  # records flowing to all three
            # A copy to fail over to: the month's index made by the first send must have its
            # replica started (on a loaded machine that can take longer than the 3 s above;
            # killing the only copy would take the records it acknowledged down with it).
            client.options(request_timeout=90).cluster.health(
                wait_for_status="green", timeout="60s"
            )
            master = str(client.nodes.info(node_id="_master")["nodes"].popitem()[1]["name"])
            # A data node other than the elected master: its shards fail over to their copies.
            victim = next(e for n, e in enumerate(engines) if f"node-{n}" != master)
            victim.kill()
            time.sleep(5)  # and on, while the cluster notices and fails over
        finally:
            done.set()
            writer.join()
        try:
            health = client.options(request_timeout=150).cluster.health(
                wait_for_status="yellow", timeout="120s"
            )
            assert health["status"] in ("yellow", "green") and health["number_of_nodes"] == 2
            assert log.flush(timeout=240), log.stats()
            stored = all_ids(store)
            assert len(stored) == len(set(stored))  # none twice
            assert sorted(stored) == sorted(r.id for r in recorded)  # none lost
            assert len(recorded) > 1000
            stats = log.stats()
            assert stats.delivered == len(recorded) and stats.dead_lettered == 0
        finally:
            log.close()
