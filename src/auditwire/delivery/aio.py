"""The delivery pipeline as a task on the application's asyncio event loop.

:class:`AsyncDelivery` drives the same :class:`~auditwire.delivery.plan.DeliveryPlan` as
:class:`~auditwire.delivery.pipeline.Delivery` — so it makes every decision the thread makes —
but sends through the destination's async client and waits with the loop, so an asyncio
application needs no delivery thread. Writing stays what it is everywhere: an append to the
local spool, from any thread (the capture hand-off's included).

Start it on the loop (:class:`~auditwire.asgi.AuditMiddleware` does at lifespan start-up, or
at its first request when the server runs no lifespan)::

    delivery = AsyncDelivery(ElasticsearchStore(url), spool_dir, client=AsyncElasticsearch(url))
    await delivery.start()
    ...
    await delivery.aclose()
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from auditwire.delivery.client_logs import WORKER_NAME, quiet_client_logs
from auditwire.delivery.plan import DeliveryPlan, DeliveryStats, Plan, PlanOptions, SendBatch, Wait
from auditwire.delivery.spool import Spool
from auditwire.errors import StoreError
from auditwire.stores.base import AsyncDestination

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from auditwire.record import AuditRecord

__all__ = ["AsyncDelivery"]


class AsyncDelivery:
    """A delivery pipeline whose worker is a task sending with ``client`` (an async client of
    the destination's kind, such as ``AsyncElasticsearch``) to ``destination``. Records written
    before :meth:`start` wait in the spool. The options are the plan's
    (:class:`~auditwire.delivery.plan.PlanOptions`), as for :class:`Delivery`."""

    def __init__(
        self,
        destination: AsyncDestination,
        spool: Spool | str | os.PathLike[str],
        *,
        client: Any,
        **options: Unpack[PlanOptions],
    ) -> None:
        self.client = client
        self._send = destination.async_sender(client)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._hurry: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._pid = os.getpid()
        self._closed = False
        self.plan = DeliveryPlan(destination, spool, wake=self._poke, **options)
        self.plan.adopt_orphans()  # the task starts with start(), on the application's loop
        atexit.register(self.close)

    @property
    def destination(self) -> AsyncDestination:
        return self.plan.destination  # type: ignore[return-value]  # given as one

    @property
    def spool(self) -> Spool:
        return self.plan.spool

    def __repr__(self) -> str:
        return f"AsyncDelivery({self.destination!r}, {self.spool!r})"

    async def start(self) -> None:
        """Start delivering on the running loop (again after :meth:`aclose`: no)."""
        if self._closed:
            raise StoreError("this delivery pipeline is closed")
        if self._task is not None and not self._task.done():
            return
        self._loop = asyncio.get_running_loop()
        self._wake, self._hurry, self._stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
        quiet_client_logs()
        self._task = self._loop.create_task(self._run(), name=WORKER_NAME)

    @property
    def running(self) -> bool:
        """Whether the delivery task is running (started and not stopped)."""
        return self._task is not None and not self._task.done()

    def _alive(self) -> bool:
        return self.running

    def _poke(self, hurry: bool) -> None:
        """Wake the task from any thread: records arrived, or a flush hurries."""
        loop, wake, hurry_event = self._loop, self._wake, self._hurry
        if loop is None or wake is None or hurry_event is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(wake.set)
            if hurry:
                loop.call_soon_threadsafe(hurry_event.set)
        except RuntimeError:  # the loop closed meanwhile: the records wait in the spool
            pass

    # -- the sink ---------------------------------------------------------------------------

    def write(self, records: Sequence[AuditRecord]) -> None:
        """Append records to the spool (all or none) and return; the task delivers them."""
        if self._closed:
            raise StoreError("this delivery pipeline is closed")
        if self._pid != os.getpid():
            raise StoreError("an AsyncDelivery cannot follow a fork; make one in the child")
        self.plan.accept(records)

    def flush(self, timeout: float | None = None, *, during_outage: bool = True) -> bool:
        """Wait until everything written before the call is delivered, from a thread other
        than the loop's (it blocks): in a coroutine, ``await`` :meth:`aflush`."""
        if self._loop is not None and _running_loop() is self._loop:
            raise RuntimeError("flush() would block the event loop; await aflush() instead")
        return self.plan.wait_delivered(timeout, during_outage=during_outage, alive=self._alive)

    async def aflush(self, timeout: float | None = None) -> bool:
        loop = asyncio.get_running_loop()
        wait = functools.partial(
            self.plan.wait_delivered, timeout, during_outage=True, alive=self._alive
        )
        return await loop.run_in_executor(None, wait)

    async def aclose(self, timeout: float | None = 30.0) -> None:
        """Deliver what can be delivered within ``timeout``, stop the task, close clients."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.plan.last_flush, timeout, self._alive)
        self.plan.stopping.set()
        if self._stop is not None:
            self._stop.set()
        if self._task is not None:
            await self._task
        self._release()
        await self.client.close()

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop without waiting (at interpreter exit the loop is gone): what is undelivered
        stays in the spool for the next start. Prefer ``await aclose()``."""
        if self._closed:
            return
        self.plan.stopping.set()
        self._release()

    def _release(self) -> None:
        self._closed = True
        atexit.unregister(self.close)
        self.plan.release(owner=self._pid == os.getpid())

    def stats(self) -> DeliveryStats:
        return self.plan.stats()

    # -- the task ---------------------------------------------------------------------------

    async def _run(self) -> None:
        plan = self.plan
        while not plan.stopping.is_set():
            try:
                plan.housekeep()
                await self._drive(plan.step())
            except Exception as exc:  # the worker must outlive any bug; the spool keeps the data
                plan.failures.note(f"the delivery task hit an unexpected error: {exc!r}")
                await self._sleep(1.0)

    async def _drive(self, plan: Plan) -> object:
        """Carry out a plan's waits and sends on the loop."""
        answer: object = None
        while True:
            try:
                step = plan.send(answer)
            except StopIteration as done:
                return done.value
            if isinstance(step, SendBatch):
                try:
                    answer = await self._send(step.payloads)
                except Exception as exc:
                    answer = exc
            elif isinstance(step, Wait):
                assert self._wake is not None and self._hurry is not None
                event = self._hurry if step.hurry else self._wake
                answer = await _wait(event, step.seconds)
                if not step.hurry or not self.plan.hurry.is_set():  # a flush's hurry lasts it
                    event.clear()
            else:
                answer = await self._sleep(step.seconds)

    async def _sleep(self, seconds: float) -> bool:
        """Back off; ``True`` when stopping."""
        assert self._stop is not None
        return await _wait(self._stop, seconds)


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
