"""Moved to :mod:`auditwire.listing.params`: this path re-exports it until 0.3."""

from __future__ import annotations

from auditwire._moved import warn_moved
from auditwire.listing.params import *  # noqa: F403
from auditwire.listing.params import __all__ as __all__

warn_moved(__name__)
