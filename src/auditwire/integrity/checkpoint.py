"""Checkpoints: a writer's chain head, authenticated with a key.

A checkpoint is a record of its own (action ``audit_log.checkpoint``) sealed into the writer's
chain like any other, whose metadata holds a *body* — the log's origin, the writer, the
checkpoint's own sequence number, the hash of the record before it (the head it vouches for),
its time and kind, the interval the writer promises the next one within, the number of the
previous checkpoint — and a signature over the body's canonical bytes. Whoever rewrites a
chain from an edit onwards can recompute every hash but not the signature, and the body keeps
the head it was signed over.

Kinds: ``start`` (a writer's first record), ``fork`` (a forked child's first, naming where its
parent's chain stood), ``interval`` (every ``interval`` seconds, idle or not), ``close`` (clean
shutdown) and ``prune`` (retention removed records; lists, per writer, the sequence ranges
removed and the hashes at their edges, so what remains still links up).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from auditwire._time import format_timestamp, parse_timestamp
from auditwire.canonical import canonical_json
from auditwire.errors import InvalidRecordError
from auditwire.integrity.keys import IntegrityKey, Keyring
from auditwire.record import Actor, AuditRecord
from auditwire.seal import ChainState

__all__ = [
    "CHECKPOINT_ACTION",
    "KINDS",
    "CheckpointProblem",
    "Kind",
    "checkpoint_record",
    "read_checkpoint",
]

CHECKPOINT_ACTION = "audit_log.checkpoint"
Kind = Literal["start", "fork", "interval", "close", "prune"]
KINDS: tuple[Kind, ...] = ("start", "fork", "interval", "close", "prune")
_DOMAIN = b"auditwire.checkpoint.v1\n"
_ACTOR = Actor.system("auditwire")


def _message(body: dict[str, Any]) -> bytes:
    return _DOMAIN + canonical_json(body)


def checkpoint_record(
    kind: Kind,
    origin: str,
    state: ChainState,
    key: IntegrityKey | None,
    *,
    time: datetime,
    interval: float,
    previous: int | None,
    parent: ChainState | None = None,
    pruned: list[dict[str, Any]] | None = None,
) -> AuditRecord:
    """The checkpoint that follows ``state`` (to be sealed as the chain's next record).
    Without a key it is unsigned: only a prune is written so, by a log without keys, to
    declare what retention removed to a verifier that has none either."""
    body: dict[str, Any] = {
        "kind": kind,
        "origin": origin,
        "writer": state.writer,
        "seq": state.seq + 1,
        "head": state.head,
        "time": format_timestamp(time),
        "interval": interval,
        "previous": previous,
        "key": None if key is None else key.id,
        "algorithm": None if key is None else key.algorithm,
    }
    if parent is not None:
        body["parent"] = {"writer": parent.writer, "seq": parent.seq, "head": parent.head}
    if pruned is not None:
        body["pruned"] = pruned
    what = f"{len(pruned)} range(s) removed by retention" if pruned is not None else f"{kind}"
    return AuditRecord(
        action=CHECKPOINT_ACTION,
        category="audit_log",
        actor=_ACTOR,
        metadata={"checkpoint": body, "signature": "" if key is None else key.sign(_message(body))},
        timestamp=time,
        message=f"Integrity checkpoint ({what}) of writer {state.writer} at {state.seq}",
    )


@dataclass(frozen=True, slots=True)
class CheckpointProblem:
    """Why a checkpoint does not authenticate: ``verdict`` is ``bad_signature``,
    ``wrong_key`` or ``key_expired``."""

    verdict: str
    detail: str


def read_checkpoint(
    api: dict[str, Any], keyring: Keyring | None
) -> tuple[dict[str, Any] | None, CheckpointProblem | None]:
    """The body of a checkpoint record's API form and, with a keyring, what is wrong with its
    signature (``None``: authentic). A body that is not one is a bad signature."""
    metadata = api.get("metadata")
    body = metadata.get("checkpoint") if isinstance(metadata, dict) else None
    signature = metadata.get("signature") if isinstance(metadata, dict) else None
    if (
        not isinstance(body, dict)
        or not isinstance(signature, str)
        or body.get("kind") not in KINDS
    ):
        return None, CheckpointProblem("bad_signature", "the record is not a checkpoint")
    if keyring is None:
        return body, None
    key = None if body.get("key") is None else keyring.get(str(body["key"]))
    if key is None:
        named = body.get("key")
        return body, CheckpointProblem(
            "wrong_key",
            "unsigned" if named is None else f"signed with key {named!r}, not on the keyring",
        )
    if body.get("algorithm") != key.algorithm:
        return body, CheckpointProblem(
            "wrong_key", f"signed as {body.get('algorithm')}, but key {key.id} is {key.algorithm}"
        )
    if not key.verifies(_message(body), signature):
        return body, CheckpointProblem(
            "bad_signature", f"the signature does not verify with key {key.id}"
        )
    try:
        moment = parse_timestamp(body.get("time"), "time")
    except InvalidRecordError:
        return body, CheckpointProblem("bad_signature", "its time is not a time")
    if not key.valid_at(moment):
        return body, CheckpointProblem(
            "key_expired",
            f"signed at {body['time']} with key {key.id}, outside its validity period",
        )
    return body, None
