"""auditwire for ``../shared/bench/icount.py`` (instructions per request under callgrind).

Run from the project's root with the project's interpreter::

    .venv/bin/python ../shared/bench/icount.py asgi bare ref \\
        'auditwire=bench.icount_factories:asgi_discard' \\
        'auditwire+spool=bench.icount_factories:asgi_spool'
    .venv/bin/python ../shared/bench/icount.py wsgi bare ref \\
        'auditwire=bench.icount_factories:wsgi_discard' \\
        'auditwire+spool=bench.icount_factories:wsgi_spool'

The variants are those of ``bench/middleware.py``: records built and discarded, or built,
encoded as ECS documents and appended to the spool of an Elasticsearch store nothing listens
on (the production path up to the network). Both trust the proxies ``ref`` trusts. Only
documented import paths are used, so the same file measures an earlier version too.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from typing import Any

from auditwire import AuditLog, AuditRecord
from auditwire.asgi import AuditMiddleware as AsgiAudit
from auditwire.wsgi import AuditMiddleware as WsgiAudit

#: What ``ref`` trusts (icount.py's TRUSTED).
TRUSTED = ["127.0.0.1", "::1", "10.1.2.3"]


class Discarding:
    """A sink that drops what it is given: capture and building without storage."""

    def write(self, records: Sequence[AuditRecord]) -> None:
        pass

    def close(self) -> None:
        pass


def _spooled() -> AuditLog:
    from auditwire.stores.elasticsearch import ElasticsearchStore

    logging.getLogger("auditwire").setLevel(logging.CRITICAL)  # its worker only backs off
    return AuditLog(ElasticsearchStore("http://127.0.0.1:9"), spool=tempfile.mkdtemp())


def asgi_discard(app: Any) -> AsgiAudit:
    return AsgiAudit(app, AuditLog(Discarding()), trusted_proxies=TRUSTED)


def asgi_spool(app: Any) -> AsgiAudit:
    return AsgiAudit(app, _spooled(), trusted_proxies=TRUSTED)


def wsgi_discard(app: Any) -> WsgiAudit:
    return WsgiAudit(app, AuditLog(Discarding()), trusted_proxies=TRUSTED)


def wsgi_spool(app: Any) -> WsgiAudit:
    return WsgiAudit(app, _spooled(), trusted_proxies=TRUSTED)


def _unsealed(log: AuditLog) -> AuditLog:
    """``log`` with its records passed through unsealed: only to measure what sealing
    costs, by difference (every log seals)."""

    def unsealed(records: Sequence[AuditRecord], *, in_place: bool = False) -> list[AuditRecord]:
        return list(records)

    log.sealer.chain.seal = unsealed  # type: ignore[method-assign]
    return log


def asgi_spool_unsealed(app: Any) -> AsgiAudit:
    return AsgiAudit(app, _unsealed(_spooled()), trusted_proxies=TRUSTED)


def wsgi_spool_unsealed(app: Any) -> WsgiAudit:
    return WsgiAudit(app, _unsealed(_spooled()), trusted_proxies=TRUSTED)
