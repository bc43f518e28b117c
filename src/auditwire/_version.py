"""The package's version, in one place (``auditwire.__version__``, ``auditwire --version``)."""

from __future__ import annotations

__all__ = ["VERSION"]

VERSION = "0.1.0"
