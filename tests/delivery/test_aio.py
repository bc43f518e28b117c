"""The pipeline as a task on an asyncio loop, sending with AsyncElasticsearch."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from auditwire import Actor, AuditLog
from auditwire.asgi import AuditMiddleware
from auditwire.delivery.aio import AsyncDelivery
from auditwire.delivery.pipeline import Backoff
from auditwire.stores.elasticsearch import ElasticsearchStore
from tests.delivery.test_pipeline import all_ids
from tests.support.proxy import FaultProxy

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def audited_app(
    es_url: str, es_store: ElasticsearchStore, tmp_path: Path
) -> tuple[AsyncDelivery, AuditMiddleware]:
    """A one-route Starlette app audited into an AsyncDelivery that nothing started yet."""

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hi")

    delivery = AsyncDelivery(
        ElasticsearchStore(es_url, prefix=es_store.prefix),
        tmp_path,
        client=AsyncElasticsearch(es_url),
    )
    return delivery, AuditMiddleware(Starlette(routes=[Route("/hello", hello)]), AuditLog(delivery))


async def test_records_are_delivered_by_a_task_through_an_outage(
    es_url: str, es_store: ElasticsearchStore, tmp_path: Path
) -> None:
    host, port = es_url.removeprefix("http://").split(":")
    proxy = FaultProxy(host, int(port))
    store = ElasticsearchStore(Elasticsearch(proxy.url), prefix=es_store.prefix)
    delivery = AsyncDelivery(
        store,
        tmp_path,
        client=AsyncElasticsearch(proxy.url, request_timeout=5),
        backoff=Backoff(0.05, 0.5),
    )
    await delivery.start()
    log = AuditLog(delivery)
    proxy.set_mode("down")
    accepted = [log.record("login", actor=Actor(id=f"u{n}")).id for n in range(300)]
    await asyncio.sleep(1.0)
    assert log.stats().delivered == 0 and log.stats().delivery_failures > 0
    assert not [t for t in threading.enumerate() if t.name == "auditwire-delivery"]  # a task
    with pytest.raises(RuntimeError, match="aflush"):
        delivery.flush(1)  # would block the loop
    proxy.set_mode("forward")
    assert await delivery.aflush(timeout=30)
    assert sorted(all_ids(es_store)) == sorted(accepted)
    await delivery.aclose()
    proxy.close()
    assert not list(tmp_path.rglob("*.seg"))


async def test_the_middleware_starts_the_task_at_lifespan_and_flushes_at_shutdown(
    es_url: str, es_store: ElasticsearchStore, tmp_path: Path
) -> None:
    delivery, app = audited_app(es_url, es_store, tmp_path)
    messages: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
    sent: list[str] = []

    async def receive() -> MutableMapping[str, Any]:
        return await messages.get()

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    lifespan = asyncio.create_task(app(scope, receive, send))
    await messages.put({"type": "lifespan.startup"})
    while "lifespan.startup.complete" not in sent:
        await asyncio.sleep(0.01)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        for _ in range(20):
            assert (await client.get("/hello")).status_code == 200
    await messages.put({"type": "lifespan.shutdown"})
    await lifespan
    assert "lifespan.shutdown.complete" in sent
    assert len(all_ids(es_store)) == 20  # delivered by the task before shutdown completed
    await delivery.aclose()


async def test_without_lifespan_the_first_request_starts_the_task(
    es_url: str, es_store: ElasticsearchStore, tmp_path: Path
) -> None:
    """A server running no lifespan (``--lifespan off``) must not leave records in the spool
    forever: the middleware starts delivery on the first request."""

    delivery, app = audited_app(es_url, es_store, tmp_path)
    transport = httpx.ASGITransport(app=app)  # sends no lifespan events
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        for _ in range(20):
            assert (await client.get("/hello")).status_code == 200
    assert delivery.running
    await asyncio.get_running_loop().run_in_executor(None, app.audit_log.handoff.flush, 10.0)
    assert await delivery.aflush(timeout=30)
    assert len(all_ids(es_store)) == 20
    await delivery.aclose()


async def test_a_closed_delivery_does_not_break_requests(
    es_url: str, es_store: ElasticsearchStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    delivery, app = audited_app(es_url, es_store, tmp_path)
    await delivery.aclose()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        assert (await client.get("/hello")).status_code == 200
    assert "could not start delivery" in caplog.text
