"""Durability: from a record handed over to a record in the store, never lost, never twice.

- :mod:`~auditwire.delivery.handoff` — capture's records built and written in batches without
  the request waiting on a store;
- :mod:`~auditwire.delivery.spool` — the local journal a remote store's records wait in;
- :mod:`~auditwire.delivery.plan` — every decision of delivering a spool (batches, retries,
  dead letters), as steps for a driver;
- :mod:`~auditwire.delivery.pipeline` — :class:`Delivery`, the plan driven by a thread;
- :mod:`~auditwire.delivery.aio` — :class:`~auditwire.delivery.aio.AsyncDelivery`, the plan
  driven by a task on an event loop;
- :mod:`~auditwire.delivery.fanout` — one record, several sinks.

Delivery imports the model and the store contract (:mod:`auditwire.stores.base`) only.
"""

from __future__ import annotations

from auditwire.delivery.fanout import FanOut
from auditwire.delivery.pipeline import Delivery, spooled
from auditwire.delivery.plan import Backoff, DeliveryStats, Pipeline
from auditwire.delivery.spool import Spool

__all__ = ["Backoff", "Delivery", "DeliveryStats", "FanOut", "Pipeline", "Spool", "spooled"]
