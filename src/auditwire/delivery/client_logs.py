"""Keep the clients' per-request INFO lines about delivery out of the application's log.

The ``elasticsearch`` and ``opensearch-py`` clients log every request at INFO
(``POST http://es:9200/_bulk [status:200 duration:0.004s]``). The delivery worker sends a bulk
request every few records, so an application that logs at INFO would see its log flooded with
lines about auditwire's housekeeping. A filter on those loggers drops INFO (and lower) lines
logged from the delivery worker — its thread, or its task on an event loop — and nothing else:
the application's own client calls still log, and every warning or error passes. Delivery
reports its own failures (:mod:`auditwire.delivery.failures`).
"""

from __future__ import annotations

import asyncio
import logging
import threading

__all__ = ["CLIENT_LOGGERS", "WORKER_NAME", "quiet_client_logs"]

#: The name of the delivery worker's thread and of its task on an event loop.
WORKER_NAME = "auditwire-delivery"
#: The loggers the clients log each request to.
CLIENT_LOGGERS = ("elastic_transport.transport", "opensearch")


def _in_worker() -> bool:
    if threading.current_thread().name == WORKER_NAME:
        return True
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop in this thread
        return False
    return task is not None and task.get_name() == WORKER_NAME


class _DeliveryRequests(logging.Filter):
    """Drops the routine lines of the delivery worker's requests."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not _in_worker()


_FILTER = _DeliveryRequests()


def quiet_client_logs() -> None:
    """Install the filter on the clients' loggers (once; later calls change nothing)."""
    for name in CLIENT_LOGGERS:
        found = logging.getLogger(name)
        if _FILTER not in found.filters:
            found.addFilter(_FILTER)
