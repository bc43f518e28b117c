"""What retention removes from the chains, declared before it is removed.

Retention removes records by age (and tenant), which leaves holes in the writers' chains — at
their start, and in the middle where tenants are kept for different times. Before anything
is deleted, :func:`pruned_ranges` walks the chains and works out, per writer, the runs of
numbers that will go and the hashes at their edges; the log writes them in a signed ``prune``
checkpoint; only then does the store delete. The verifier accepts a hole exactly when a prune
checkpoint declares it and the hashes on both sides match what it declared, so retention never
breaks verification and nothing else can hide behind it.

Declarations carry forward: each prune lists every hole so far, merged, because the prune
checkpoints of earlier runs age out too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from auditwire._time import format_timestamp
from auditwire.integrity.checkpoint import CHECKPOINT_ACTION
from auditwire.retention import RetentionPolicy

__all__ = ["pruned_ranges"]


def _cutoffs(policy: RetentionPolicy, now: datetime) -> tuple[str, dict[str, str]]:
    """The cutoff of records of any other tenant, and of each named tenant, as stored text
    (which orders like the times)."""
    named = {tenant: format_timestamp(now - age) for tenant, age in policy.tenants.items()}
    return format_timestamp(now - policy.max_age), named


def _merge(ranges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ranges of one writer joined where they touch (the hashes at the outer edges kept)."""
    out: list[dict[str, Any]] = []
    for entry in sorted(ranges, key=lambda e: (e["first"], e["last"])):
        if out and entry["first"] <= out[-1]["last"] + 1:
            if entry["last"] > out[-1]["last"]:
                out[-1] = {**out[-1], "last": entry["last"], "head": entry["head"]}
            continue
        out.append(dict(entry))
    return out


def pruned_ranges(
    chain: Iterable[dict[str, Any]], policy: RetentionPolicy, now: datetime
) -> list[dict[str, Any]]:
    """Every hole the chains will have once ``policy`` is applied at ``now``: ``{writer,
    first, last, prev, head}`` — the numbers removed, the hash before the first and the hash
    of the last. ``chain`` is a store's records in chain order; holes declared by earlier
    prune checkpoints in it are carried forward."""
    default, named = _cutoffs(policy, now)
    by_writer: dict[str, list[dict[str, Any]]] = {}
    run: dict[str, Any] | None = None
    for api in chain:
        integrity = api.get("integrity")
        if not isinstance(integrity, dict):
            continue
        writer, seq = integrity["writer"], integrity["seq"]
        if api.get("action") == CHECKPOINT_ACTION:
            body = (api.get("metadata") or {}).get("checkpoint") or {}
            for entry in body.get("pruned") or []:
                by_writer.setdefault(entry["writer"], []).append(entry)
        tenant = api.get("tenant")
        cutoff = named.get(tenant, default) if tenant is not None else default
        if api["timestamp"] < cutoff:
            if run is not None and run["writer"] == writer and run["last"] == seq - 1:
                run["last"], run["head"] = seq, integrity["hash"]
                continue
            run = {
                "writer": writer,
                "first": seq,
                "last": seq,
                "prev": integrity["prev"],
                "head": integrity["hash"],
            }
            by_writer.setdefault(writer, []).append(run)
        else:
            run = None
    return [entry for writer in sorted(by_writer) for entry in _merge(by_writer[writer])]
