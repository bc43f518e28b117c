"""Moved to :mod:`auditwire.delivery.fanout`: this path re-exports it until 0.3."""

from __future__ import annotations

from auditwire._moved import warn_moved
from auditwire.delivery.fanout import *  # noqa: F403
from auditwire.delivery.fanout import __all__ as __all__

warn_moved(__name__)
