"""The spooled variants of ``bench/icount_factories.py`` on the pure-Python path: the native
encoder is turned off (``AUDITWIRE_NATIVE=0``) before auditwire is imported, which is when
it is chosen. ``icount.py`` runs every variant in a fresh interpreter, so the other variants
keep it."""

from __future__ import annotations

import os

os.environ["AUDITWIRE_NATIVE"] = "0"

from bench.icount_factories import asgi_spool, wsgi_spool

__all__ = ["asgi_spool", "wsgi_spool"]
