"""Moved to :mod:`auditwire.integrations.otel`: this path re-exports it until 0.3."""

from __future__ import annotations

from auditwire._moved import warn_moved
from auditwire.integrations.otel import *  # noqa: F403
from auditwire.integrations.otel import __all__ as __all__

warn_moved(__name__)
