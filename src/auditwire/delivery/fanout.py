"""One record, several places: a spooled Elasticsearch for the dashboards, a local SQLite for
the admin page, OpenTelemetry for the collector...

Each remote destination gets a delivery pipeline of its own (its own spool and position), so
one store being away never holds back another, and each catches up on its own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from auditwire.delivery.pipeline import spooled
from auditwire.delivery.plan import DeliveryStats, Pipeline
from auditwire.errors import StoreError
from auditwire.stores.base import Destination, Flushable, Sink, Store

if TYPE_CHECKING:
    from auditwire.record import AuditRecord


__all__ = ["FanOut"]


class FanOut:
    """Writes every record to each of ``sinks``; reads from the first readable one.

    Remote destinations are wrapped in a :class:`~auditwire.delivery.pipeline.Delivery`
    spooling under ``spool``. A write goes to every sink even when one fails; then the failure
    is raised, naming the sinks that did not take the records (the others have them).
    """

    def __init__(
        self, sinks: Iterable[Sink], *, spool: str | os.PathLike[str] | None = None
    ) -> None:
        self.sinks: list[Sink] = [
            spooled(s, spool) if isinstance(s, Destination) else s for s in sinks
        ]
        if not self.sinks:
            raise ValueError("FanOut needs at least one sink")

    def __repr__(self) -> str:
        return f"FanOut({self.sinks!r})"

    @property
    def primary(self) -> Store | None:
        """The first sink that can be read back (a pipeline's destination counts)."""
        for sink in self.sinks:
            readable = sink.plan.destination if isinstance(sink, Pipeline) else sink
            if isinstance(readable, Store):
                return readable
        return None

    def write(self, records: Sequence[AuditRecord]) -> None:
        failed = []
        for sink in self.sinks:
            try:
                sink.write(records)
            except Exception as exc:
                failed.append(f"{sink!r}: {exc}")
        if failed:
            raise StoreError(
                f"{len(failed)} of {len(self.sinks)} sinks refused {len(records)} record(s): "
                + "; ".join(failed)
            )

    def flush(self, timeout: float | None = None, *, during_outage: bool = True) -> bool:
        """Flush every sink that can be (see :class:`~auditwire.stores.base.Flushable`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        done = True
        for sink in self.sinks:
            if isinstance(sink, Flushable):
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                done = sink.flush(left, during_outage=during_outage) and done
        return done

    def deliveries(self) -> list[Pipeline]:
        return [s for s in self.sinks if isinstance(s, Pipeline)]

    def stats(self) -> DeliveryStats | None:
        """The pipelines' figures added up (the oldest lag, the latest error)."""
        all_stats = [d.stats() for d in self.deliveries()]
        if not all_stats:
            return None
        errors = [s.last_error for s in all_stats if s.last_error]
        times = [s.last_delivery for s in all_stats if s.last_delivery]
        return DeliveryStats(
            accepted=sum(s.accepted for s in all_stats),
            delivered=sum(s.delivered for s in all_stats),
            retried=sum(s.retried for s in all_stats),
            dead_lettered=sum(s.dead_lettered for s in all_stats),
            spooled_bytes=sum(s.spooled_bytes for s in all_stats),
            lag_seconds=max(s.lag_seconds for s in all_stats),
            replayed_journals=sum(s.replayed_journals for s in all_stats),
            damaged=sum(s.damaged for s in all_stats),
            failures=sum(s.failures for s in all_stats),
            last_error=errors[-1] if errors else None,
            last_delivery=max(times) if times else None,
        )

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
