"""Moved to :mod:`auditwire.delivery.spool`: this path re-exports it until 0.3."""

from __future__ import annotations

from auditwire._moved import warn_moved
from auditwire.delivery.spool import *  # noqa: F403
from auditwire.delivery.spool import __all__ as __all__

warn_moved(__name__)
