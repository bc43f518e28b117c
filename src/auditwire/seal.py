"""Hash chains: every record sealed into its writer's chain.

Each writing process is a *writer* with a name of its own (renewed in a forked child, so no
two processes ever share one and no lock spans processes). It numbers its records 1, 2, 3...
and seals each with ``SHA-256(domain ‖ canonical bytes)``, where the canonical bytes
(:mod:`auditwire.canonical`) are the record's API form with its ``integrity`` part — the log's
*origin*, the writer, the sequence number and the previous record's hash — in place, and only
the hash itself left out. Any change to a sealed record changes its hash; a record removed
from the middle leaves a gap in the numbers; a record moved leaves its successor pointing at
the wrong predecessor. The chain is checked per writer in sequence order, so records that
reach the store late or out of order verify the same.

A hash anyone can compute proves nothing against someone who rewrites a chain from an edit to
its end: that is what keyed checkpoints (:mod:`auditwire.integrity`) are for.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from auditwire._fastpath import seal_in_place, sealed_copy
from auditwire._native import for_records
from auditwire.canonical import canonical_json, canonical_record
from auditwire.errors import InvalidRecordError
from auditwire.record import MAX_NAME, PART_TYPES, AuditRecord, check_text

__all__ = [
    "DEFAULT_ORIGIN",
    "ZERO",
    "Chain",
    "ChainState",
    "api_digest",
    "default_origin",
    "new_writer",
    "record_digest",
    "seal_problem",
]

#: The hash before a writer's first record.
ZERO = "0" * 64
DEFAULT_ORIGIN = "auditwire"
_DOMAIN = b"auditwire.record.v1\n"
#: The native encoder's digest (see :mod:`auditwire._native`): the same hash, or ``None``
#: for a record it leaves to the pure path.
_NATIVE = for_records(AuditRecord, *PART_TYPES.values())
_native_digest: Callable[[bytes, AuditRecord, str, str, int, str], str | None] | None = (
    None if _NATIVE is None else _NATIVE.seal_digest
)
_WRITER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")


def default_origin() -> str:
    """``$AUDITWIRE_ORIGIN``, else ``auditwire``: the name that binds a chain to its log, so a
    chain copied from another log does not verify in this one."""
    return os.environ.get("AUDITWIRE_ORIGIN") or DEFAULT_ORIGIN


def new_writer() -> str:
    """A writer name no other process has: the process id (to tell writers apart when reading)
    and 64 random bits (process ids are reused)."""
    return f"p{os.getpid()}-{secrets.token_hex(8)}"


def api_digest(api: dict[str, Any]) -> str:
    """The hash of a record's API form whose ``integrity`` part holds everything but the hash
    (the part given is used as it is)."""
    return sha256(_DOMAIN + canonical_json(api)).hexdigest()


def record_digest(record: AuditRecord) -> str:
    """What the hash of a sealed record should be, from its content."""
    api = record.to_api()
    if api["integrity"] is not None:
        api["integrity"] = {k: v for k, v in api["integrity"].items() if k != "hash"}
    return api_digest(api)


def seal_problem(api: dict[str, Any]) -> str | None:
    """Why a record's API form does not match its own seal, or ``None`` (unsealed forms are a
    problem too). The form is left as it was given."""
    integrity = api.get("integrity")
    if not isinstance(integrity, dict) or not isinstance(integrity.get("hash"), str):
        return "not sealed"
    # Hashed without its hash: taken out for the digest and put back, instead of copying the
    # form (verification does this for every record a store holds).
    stated = integrity.pop("hash")
    try:
        actual = api_digest(api)
    except (TypeError, ValueError):
        return "not a record"
    finally:
        integrity["hash"] = stated
    return None if actual == stated else "its content does not match its hash"


@dataclass(frozen=True, slots=True)
class ChainState:
    """Where a chain stands: the number and hash of its last record (0 and :data:`ZERO`
    before the first)."""

    writer: str
    seq: int
    head: str


class Chain:
    """One writer's chain. Not thread-safe: its owner seals and writes under one lock, so the
    sequence follows the order records are written in."""

    def __init__(self, origin: str, writer: str | None = None) -> None:
        check_text("origin", origin, MAX_NAME, required=True)
        writer = writer if writer is not None else new_writer()
        if not _WRITER.match(writer) or len(writer) > MAX_NAME:
            raise InvalidRecordError("writer", f"{writer!r} is not a writer name")
        self.origin = origin
        self.state = ChainState(writer, 0, ZERO)

    @property
    def writer(self) -> str:
        return self.state.writer

    def renew(self) -> ChainState:
        """Start a chain under a new writer name (in a forked child); returns where the
        parent's chain stood."""
        parent = self.state
        self.state = ChainState(new_writer(), 0, ZERO)
        return parent

    def seal(self, records: Sequence[AuditRecord], *, in_place: bool = False) -> list[AuditRecord]:
        """Sealed copies of ``records``, numbered on from the chain's head (the chain moves
        on; :meth:`rewind` takes it back if they could not be written). ``in_place`` seals
        the records themselves instead: only for records nobody else holds yet."""
        origin = self.origin
        writer, seq, head = self.state.writer, self.state.seq, self.state.head
        sealed: list[AuditRecord] = []
        for record in records:
            seq += 1
            digest = None if _native_digest is None else _native_digest(
                _DOMAIN, record, origin, writer, seq, head
            )  # fmt: skip
            if digest is None:
                api = record.to_api()
                api["integrity"] = {"origin": origin, "writer": writer, "seq": seq, "prev": head}
                digest = sha256(_DOMAIN + canonical_record(api)).hexdigest()
            if in_place:
                seal_in_place(record, origin, writer, seq, head, digest)
                sealed.append(record)
            else:
                sealed.append(sealed_copy(record, origin, writer, seq, head, digest))
            head = digest
        self.state = ChainState(writer, seq, head)
        return sealed

    def rewind(self, state: ChainState) -> None:
        """Back to ``state``: records sealed since were not stored."""
        self.state = state
