"""Import paths that moved in 0.2: each old module re-exports its new home for one release and
says so once, with a :class:`DeprecationWarning` naming the new path."""

from __future__ import annotations

import warnings

__all__ = ["MOVED", "warn_moved"]

#: Old module → where it lives now. Removed in 0.3.
MOVED: dict[str, str] = {
    "auditwire.aio": "auditwire.delivery.aio",
    "auditwire.devices": "auditwire.capture.devices",
    "auditwire.fanout": "auditwire.delivery.fanout",
    "auditwire.filters": "auditwire.listing.params",
    "auditwire.logging": "auditwire.integrations.logging",
    "auditwire.otel": "auditwire.integrations.otel",
    "auditwire.spool": "auditwire.delivery.spool",
    "auditwire.structlog": "auditwire.integrations.structlog",
}


def warn_moved(old: str) -> None:
    warnings.warn(
        f"{old} moved to {MOVED[old]}; the old path goes away in auditwire 0.3",
        DeprecationWarning,
        stacklevel=3,
    )
