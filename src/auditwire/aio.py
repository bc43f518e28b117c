"""The delivery pipeline as a task on the application's asyncio event loop.

:class:`AsyncDelivery` makes every decision :class:`~auditwire.delivery.Delivery` makes — it
runs the same plan — but sends with ``AsyncElasticsearch`` and waits with the loop, so an
asyncio application needs no delivery thread. Writing stays what it is everywhere: an append
to the local spool, from any thread (the capture hand-off's included).

Start it on the loop (:class:`~auditwire.asgi.AuditMiddleware` does at lifespan start-up, or
at its first request when the server runs no lifespan)::

    delivery = AsyncDelivery(ElasticsearchStore(url), spool_dir, client=AsyncElasticsearch(url))
    await delivery.start()
    ...
    await delivery.aclose()
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import TYPE_CHECKING, Any

from auditwire.delivery import Delivery, Plan, Send, Wait
from auditwire.errors import StoreError
from auditwire.spool import Spool
from auditwire.stores.clusters import BULK_FILTER, bulk_results, elasticsearch_send_error

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

    from auditwire.delivery import ItemResult
    from auditwire.stores.elasticsearch import ElasticsearchStore


class AsyncDelivery(Delivery):
    """A :class:`~auditwire.delivery.Delivery` whose worker is a task sending with
    ``client`` (an ``AsyncElasticsearch``) to ``destination``'s indices. Records written
    before :meth:`start` wait in the spool."""

    def __init__(
        self,
        destination: ElasticsearchStore,
        spool: Spool | str | os.PathLike[str],
        *,
        client: AsyncElasticsearch,
        **options: Any,
    ) -> None:
        self.client = client
        self._sender = client.options(max_retries=0, retry_on_timeout=False)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        super().__init__(destination, spool, **options)

    def _start(self) -> None:
        self._adopt_orphans()  # the task starts with start(), on the application's loop
        self._task = None
        self._wake_async: asyncio.Event | None = None
        self._hurry_async: asyncio.Event | None = None
        self._stop_async: asyncio.Event | None = None

    def _ensure_running(self) -> None:
        if self._pid != os.getpid():
            raise StoreError("an AsyncDelivery cannot follow a fork; make one in the child")

    async def start(self) -> None:
        """Start delivering on the running loop (again after :meth:`aclose`: no)."""
        if self._closed:
            raise StoreError("this delivery pipeline is closed")
        if self._task is not None and not self._task.done():
            return
        self._loop = asyncio.get_running_loop()
        self._wake_async, self._hurry_async = asyncio.Event(), asyncio.Event()
        self._stop_async = asyncio.Event()
        self._task = self._loop.create_task(self._run_async(), name="auditwire-delivery")

    def _worker_alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def _poke(self, *, hurry: bool = False) -> None:
        super()._poke(hurry=hurry)
        loop, wake, hurry_event = self._loop, self._wake_async, self._hurry_async
        if loop is None or wake is None or hurry_event is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(wake.set)
            if hurry:
                loop.call_soon_threadsafe(hurry_event.set)
        except RuntimeError:  # the loop closed meanwhile: the records wait in the spool
            pass

    async def _run_async(self) -> None:
        while not self._stopping.is_set():
            try:
                self._housekeep()
                await self._adrive(self._step())
            except Exception as exc:  # the worker must outlive any bug; the spool keeps the data
                self._failures.note(f"the delivery task hit an unexpected error: {exc!r}")
                await self._sleep(1.0)

    async def _adrive(self, plan: Plan) -> object:
        """Carry out a plan's waits and sends on the loop."""
        answer: object = None
        while True:
            try:
                step = plan.send(answer)
            except StopIteration as done:
                return done.value
            if isinstance(step, Send):
                try:
                    answer = await self._send(step.payloads)
                except Exception as exc:
                    answer = exc
            elif isinstance(step, Wait):
                assert self._wake_async is not None and self._hurry_async is not None
                event = self._hurry_async if step.hurry else self._wake_async
                answer = await _wait(event, step.seconds)
                if not step.hurry or not self._hurry.is_set():  # a flush's hurry lasts the flush
                    event.clear()
            else:
                answer = await self._sleep(step.seconds)

    async def _send(self, payloads: list[bytes]) -> list[ItemResult]:
        from elasticsearch import ApiError, TransportError

        refresh = getattr(self.destination, "refresh", False)
        try:
            answer = await self._sender.bulk(
                operations=b"\n".join(payloads) + b"\n",  # type: ignore[arg-type]
                refresh=refresh,
                filter_path=BULK_FILTER,
            )
        except (ApiError, TransportError) as exc:
            raise elasticsearch_send_error(exc) from exc
        return bulk_results(answer.body)

    async def _sleep(self, seconds: float) -> bool:
        """Back off; ``True`` when stopping."""
        assert self._stop_async is not None
        return await _wait(self._stop_async, seconds)

    def flush(self, timeout: float | None = None, *, during_outage: bool = True) -> bool:
        """As :meth:`Delivery.flush`, from a thread other than the loop's (it blocks): in a
        coroutine, ``await`` :meth:`aflush`."""
        if self._loop is not None and _running_loop() is self._loop:
            raise RuntimeError("flush() would block the event loop; await aflush() instead")
        return super().flush(timeout, during_outage=during_outage)

    async def aflush(self, timeout: float | None = None) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(super().flush, timeout))

    async def aclose(self, timeout: float | None = 30.0) -> None:
        """Deliver what can be delivered within ``timeout``, stop the task, close clients."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._last_flush, timeout)
        self._stopping.set()
        if self._stop_async is not None:
            self._stop_async.set()
        if self._task is not None:
            await self._task
        self._release()
        await self.client.close()

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop without waiting (at interpreter exit the loop is gone): what is undelivered
        stays in the spool for the next start. Prefer ``await aclose()``."""
        if self._closed:
            return
        self._stopping.set()
        self._release()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` at most ``seconds``; whether it was set."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:  # not yet the builtin TimeoutError on Python 3.10
        return False
    return True
