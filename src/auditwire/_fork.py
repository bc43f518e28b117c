"""Locks in forked children.

A lock another thread held at the moment of ``fork()`` stays held forever in the child, where
that thread does not exist: the child's first use of it would hang. Objects that outlive a
fork (a pre-forking server's audit log) renew their locks in the child before anything else
runs there.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def renew_in_child(owner: T, renew: Callable[[T], None]) -> None:
    """Call ``renew(owner)`` in every forked child while ``owner`` lives (it is not kept
    alive by this)."""
    if not hasattr(os, "register_at_fork"):  # no fork() on this platform
        return
    ref = weakref.ref(owner)

    def after_in_child() -> None:
        target = ref()
        if target is not None:
            renew(target)

    os.register_at_fork(after_in_child=after_in_child)
