"""Verification: walk a store's chains and say, writer by writer, what holds.

Records are read in chain order (:class:`~auditwire.stores.base.Chained`) and each is checked
against its own hash, its predecessor and, with the keyring, the checkpoints that vouch for
it. What is found is a :class:`Finding` with one verdict of :data:`VERDICTS`:

- ``edited``: a record's content does not match its hash, or a checkpoint's signed head does
  not match the chain before it (the chain was rewritten from an edit on);
- ``missing``: sequence numbers absent in the middle of a chain, not declared by a prune
  checkpoint;
- ``truncated``: the chain ends before a checkpoint the copy kept elsewhere holds;
- ``stale``: checkpoints further apart than the interval they promise plus the grace;
- ``duplicate``: a record stored twice under two ids; ``inserted``: a record that takes a
  number another record holds, follows the writer's closing checkpoint, or starts a chain no
  checkpoint vouches for;
- ``reordered``: records whose links point back past their predecessor;
- ``bad_signature``, ``wrong_key``, ``key_expired``: a checkpoint that does not authenticate,
  is signed with a key not on the keyring, or outside its key's validity period;
- ``wrong_origin``: a chain of another log;
- ``unsealed``: a record without a seal.

Warnings are not tampering: ``unclosed`` (a writer with no closing checkpoint: it crashed, was
killed, or is still running) and ``unkeyed`` (no keyring: hashes and links are checked, but
nothing proves a chain was not rewritten whole).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from auditwire._time import parse_timestamp, utcnow
from auditwire.errors import InvalidRecordError
from auditwire.integrity.checkpoint import CHECKPOINT_ACTION, read_checkpoint
from auditwire.integrity.keys import Keyring
from auditwire.seal import ZERO, default_origin, seal_problem
from auditwire.stores.base import Chained

__all__ = [
    "VERDICTS",
    "Finding",
    "RecordCheck",
    "Report",
    "WriterReport",
    "check_record",
    "read_copy",
    "verify",
]

Severity = Literal["error", "warning"]
VERDICTS = (
    "edited", "missing", "truncated", "stale", "duplicate", "inserted", "reordered",
    "bad_signature", "wrong_key", "key_expired", "wrong_origin", "unsealed",
)  # fmt: skip
WARNINGS = ("unclosed", "unkeyed")
_RELINKED = "its link does not match the record before it"
#: How many recent hashes a writer's walk remembers to tell a reordering from an edit.
_WINDOW = 256


@dataclass(frozen=True, slots=True)
class Finding:
    verdict: str
    detail: str
    seq: int | None = None
    record_id: str | None = None

    @property
    def severity(self) -> Severity:
        return "warning" if self.verdict in WARNINGS else "error"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "severity": self.severity}


@dataclass
class WriterReport:
    """What was found in one writer's chain."""

    writer: str | None  # None: the records without a seal
    origin: str | None = None
    records: int = 0
    checkpoints: int = 0
    first: int | None = None
    last: int | None = None
    closed: bool = False
    tenants: set[str | None] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.severity == "warning" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "writer": self.writer,
            "origin": self.origin,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "first": self.first,
            "last": self.last,
            "closed": self.closed,
            "ok": self.ok,
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass
class Report:
    """The verdicts of one verification: :attr:`ok` when no writer has an error."""

    writers: list[WriterReport]
    warnings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(w.ok for w in self.writers)

    @property
    def records(self) -> int:
        return sum(w.records for w in self.writers)

    def verdicts(self) -> set[str]:
        """Every verdict found, warnings included."""
        return {f.verdict for w in self.writers for f in w.findings} | {
            f.verdict for f in self.warnings
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "writers": [w.to_json() for w in self.writers],
            "warnings": [f.to_json() for f in self.warnings],
        }

    def text(self) -> str:
        lines = []
        for warning in self.warnings:
            lines.append(f"warning: {warning.detail}")
        for w in self.writers:
            name = w.writer or "(records without a seal)"
            span = "" if w.first is None else f", seq {w.first}-{w.last}"
            state = "closed" if w.closed else "open"
            verdict = "ok" if w.ok else "FAILED"
            lines.append(
                f"{name}: {w.records:,} records, {w.checkpoints} checkpoints{span}, {state}"
                f" — {verdict}"
            )
            for f in w.findings:
                where = "" if f.seq is None else f" at seq {f.seq}"
                ident = "" if f.record_id is None else f" ({f.record_id})"
                lines.append(f"  {f.severity} {f.verdict}{where}{ident}: {f.detail}")
        total = f"{self.records:,} records in {len(self.writers)} chains"
        lines.append(f"{'verified' if self.ok else 'NOT verified'}: {total}")
        return "\n".join(lines)


def read_copy(path: str | Path) -> list[dict[str, Any]]:
    """The checkpoints in a copy file (one JSON line each, as the sealer appends them); a line
    that is not one is skipped — it cannot vouch for anything."""
    out = []
    with Path(path).open("rb") as lines:
        for line in lines:
            try:
                api = json.loads(line)
            except ValueError:
                continue
            if isinstance(api, dict) and api.get("action") == CHECKPOINT_ACTION:
                out.append(api)
    return out


@dataclass
class _Walk:
    """One writer's walk in sequence order."""

    report: WriterReport
    seq: int = 0
    head: str = ZERO
    seen: dict[str, int] = field(default_factory=dict)  # recent hashes -> their numbers
    by_seq: dict[int, str] = field(default_factory=dict)  # hashes of the checkpoints
    gaps: list[tuple[int, int, str, str]] = field(default_factory=list)  # first, last, prev, next
    vouched: int = 0  # the last number a valid checkpoint vouches for
    checkpoint_time: datetime | None = None
    last_stamp: object = None  # the last record's time as stored (read when needed)
    interval: float | None = None
    holed: bool = False  # a hole since the last checkpoint
    moved: int = 0  # the number of the last record found out of its place

    def advance(self, seq: int, digest: str, stamp: object) -> None:
        """The chain walked on to record ``seq``."""
        self.seq = self.report.last = seq
        self.head = digest
        seen = self.seen
        seen[digest] = seq
        if len(seen) > _WINDOW:
            del seen[next(iter(seen))]
        self.last_stamp = stamp


class _Verifier:
    def __init__(
        self,
        store: Chained,
        keyring: Keyring | None,
        origin: str,
        grace: timedelta | None,
        bounded: bool,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.origin = origin
        self.grace = grace
        self.bounded = bounded
        self.walks: dict[str | None, _Walk] = {}
        self.pruned: dict[str, list[dict[str, Any]]] = {}

    def finding(
        self, walk: _Walk, verdict: str, detail: str, api: dict[str, Any] | None = None
    ) -> None:
        seq = None if api is None else api["integrity"]["seq"]
        walk.report.findings.append(
            Finding(verdict, detail, seq, None if api is None else api.get("id"))
        )

    def walk(self, records: Iterable[dict[str, Any]]) -> None:
        walks = self.walks
        walk: _Walk | None = None
        for api in records:
            integrity = api.get("integrity")
            writer = integrity.get("writer") if isinstance(integrity, dict) else None
            if walk is None or writer != walk.report.writer:  # records come by writer
                walk = walks.get(writer)
                if walk is None:
                    walk = walks[writer] = _Walk(WriterReport(writer))
            report = walk.report
            report.records += 1
            report.tenants.add(api.get("tenant"))
            if writer is None or not isinstance(integrity, dict):
                report.findings.append(
                    Finding("unsealed", "the record has no seal", None, api.get("id"))
                )
                continue
            seq, digest = integrity.get("seq"), integrity.get("hash")
            if (  # the common case, first: the next record, linked, not a checkpoint
                seq == walk.seq + 1
                and walk.seq
                and integrity.get("prev") == walk.head
                and not report.closed
                and api.get("action") != CHECKPOINT_ACTION
                and seal_problem(api) is None
            ):
                walk.advance(seq, str(digest), api.get("timestamp"))
                continue
            self.step(walk, api, integrity)

    def step(self, walk: _Walk, api: dict[str, Any], integrity: dict[str, Any]) -> None:
        report = walk.report
        seq, prev, digest = integrity.get("seq"), integrity.get("prev"), integrity.get("hash")
        if not isinstance(seq, int) or not isinstance(digest, str):
            self.finding(walk, "edited", "its seal is not one", None)
            return
        if report.origin is None:
            report.origin = integrity.get("origin")
            if report.origin != self.origin:
                self.finding(
                    walk,
                    "wrong_origin",
                    f"the chain belongs to {report.origin!r}, not {self.origin!r}",
                )
        if report.first is None:
            report.first = seq
        if seq == walk.seq:
            if digest == walk.head:
                self.finding(walk, "duplicate", "the same record is stored twice", api)
            else:
                self.finding(walk, "inserted", f"another record already holds number {seq}", api)
            return
        problem = seal_problem(api)
        if problem is not None:
            self.finding(walk, "edited", problem, api)
        if report.closed:
            self.finding(
                walk, "inserted", "the record follows the writer's closing checkpoint", api
            )
        if seq > walk.seq + 1 and (walk.seq or not self.bounded):
            walk.gaps.append((walk.seq + 1, seq - 1, walk.head, str(prev)))
            walk.holed = True
        elif walk.seq and prev != walk.head:
            if prev in walk.seen and walk.seen[prev] < walk.seq:
                # Its predecessor's own link was then broken by the move, not by an edit.
                # Moved records break their neighbours' links too: one finding says it all.
                findings = report.findings
                if findings and findings[-1].seq == walk.seq and findings[-1].detail == _RELINKED:
                    findings.pop()
                self.finding(
                    walk, "reordered", f"it follows number {walk.seen[prev]}, not {walk.seq}", api
                )
                walk.moved = seq
            elif walk.moved != walk.seq:
                self.finding(walk, "edited", _RELINKED, api)
        elif not walk.seq and seq == 1 and prev != ZERO:
            self.finding(walk, "edited", "the first record links to a predecessor", api)
        walk.advance(seq, digest, api.get("timestamp"))
        if api.get("action") == CHECKPOINT_ACTION:
            self.checkpoint(walk, api, integrity)

    def checkpoint(self, walk: _Walk, api: dict[str, Any], integrity: dict[str, Any]) -> None:
        report = walk.report
        report.checkpoints += 1
        walk.by_seq[integrity["seq"]] = integrity["hash"]
        body, problem = read_checkpoint(api, self.keyring)
        if problem is not None:
            self.finding(walk, problem.verdict, problem.detail, api)
            if body is None or problem.verdict == "bad_signature":
                return
        assert body is not None
        same = all(body.get(k) == integrity.get(k) for k in ("origin", "writer", "seq"))
        if not same:
            self.finding(walk, "edited", "the checkpoint was signed for another place", api)
            return
        if body.get("head") != integrity.get("prev"):
            self.finding(
                walk,
                "edited",
                f"the chain up to {integrity['seq'] - 1} is not the one the checkpoint signed",
                api,
            )
            return
        if problem is not None:
            return
        walk.vouched = integrity["seq"]
        time = parse_timestamp(body["time"], "time")
        interval = body.get("interval")
        walk.interval = float(interval) if isinstance(interval, (int, float)) else None
        quiet = time - walk.checkpoint_time if walk.checkpoint_time is not None else None
        # A hole between the two is reported (or declared) on its own, and may hold the rest.
        if quiet is not None and quiet > self.allowed(walk) and not walk.holed:
            self.finding(
                walk, "stale", f"no checkpoint for {quiet} ({self.allowed(walk)} allowed)", api
            )
        walk.holed = False
        walk.checkpoint_time = time
        if body["kind"] == "close":
            report.closed = True
        if body["kind"] == "prune":
            for entry in body.get("pruned") or []:
                self.pruned.setdefault(str(entry.get("writer")), []).append(entry)

    def declared(self, writer: str, seq: int) -> bool:
        return any(_covers(entry, seq, seq) for entry in self.pruned.get(writer, []))

    def resolve(self, walk: _Walk) -> None:
        """Settle each gap: filled from outside the time range, declared by a prune
        checkpoint, or missing."""
        writer = walk.report.writer
        assert writer is not None
        declared = self.pruned.get(writer, [])
        for first, last, before, after in walk.gaps:
            if self.bounded:
                found = list(self.store.chain(writer=writer, first=first, last=last))
                if len(found) == last - first + 1:
                    continue  # stored, outside the time range asked about
            covered = any(_covers(entry, first, last, before, after) for entry in declared)
            if covered:
                continue
            count = last - first + 1
            detail = f"{count:,} records numbered {first}-{last} are absent"
            walk.report.findings.append(
                Finding("missing", detail if count > 1 else f"record {first} is absent", first)
            )

    def finish(self, walk: _Walk, now: datetime) -> None:
        report = walk.report
        if report.writer is None or self.keyring is None:
            return
        if not self.bounded and report.first is not None and report.checkpoints == 0:
            self.finding(walk, "inserted", "no valid checkpoint vouches for this chain")
            return
        if self.bounded or report.closed or any(f.verdict == "truncated" for f in report.findings):
            return
        since, allowed = walk.checkpoint_time, self.allowed(walk)
        if since is None:
            return
        last_time = None
        with contextlib.suppress(InvalidRecordError):
            last_time = parse_timestamp(walk.last_stamp)
        if last_time is not None and last_time - since > allowed:
            late = last_time - since
            self.finding(
                walk, "stale", f"records go on {late} after the last checkpoint ({allowed} allowed)"
            )
            return
        state = (
            f"is {now - since} old: the writer stopped without closing (a crash or kill -9)"
            if now - since > allowed
            else "is recent: the writer may still be running"
        )
        report.findings.append(
            Finding("unclosed", f"no closing checkpoint; the last, at {walk.vouched}, {state}")
        )

    def allowed(self, walk: _Walk) -> timedelta:
        """The longest time between checkpoints: the interval they promise, plus the grace."""
        interval = timedelta(seconds=walk.interval or 0)
        return interval + (self.grace if self.grace is not None else interval)

    def compare_copy(self, copies: Iterable[dict[str, Any]]) -> None:
        """Checkpoints in the copy kept elsewhere must be in the store, as they were."""
        lost: dict[str, list[int]] = {}
        for api in copies:
            integrity = api.get("integrity") or {}
            writer, seq = integrity.get("writer"), integrity.get("seq")
            _, problem = read_checkpoint(api, self.keyring)
            if problem or seal_problem(api) or not isinstance(seq, int) or writer is None:
                continue  # a copy line that does not authenticate proves nothing
            if self.declared(writer, seq):
                continue  # removed by retention
            walk = self.walks.get(writer)
            if walk is None or seq > walk.seq:
                if not self.bounded:
                    lost.setdefault(writer, []).append(seq)
            elif walk.by_seq.get(seq, integrity.get("hash")) != integrity.get("hash"):
                self.finding(walk, "edited", f"the checkpoint at {seq} differs from its copy")
        for writer, seqs in lost.items():
            walk = self.walks.setdefault(writer, _Walk(WriterReport(writer)))
            ends = "holds no record" if walk.report.last is None else f"ends at {walk.report.last}"
            detail = f"the chain {ends}, but the copy holds {len(seqs)} later checkpoint(s)"
            self.finding(walk, "truncated", f"{detail}, up to {max(seqs)}")


def _shares(writers: list[str | None], count: int) -> list[list[str | None]]:
    """The writers dealt into ``count`` shares (fewer when there are fewer writers)."""
    return [share for share in (writers[n::count] for n in range(count)) if share]


#: What a forked worker walks: set before the fork, read in the child.
_SHARED: dict[str, Any] = {}


def _walk_share(share: list[str | None]) -> tuple[dict[str | None, _Walk], dict[str, Any]]:
    verifier, since, until = _SHARED["verifier"], _SHARED["since"], _SHARED["until"]
    for writer in share:
        verifier.walk(
            verifier.store.chain(since=since, until=until, unsealed=True)
            if writer is None
            else verifier.store.chain(since=since, until=until, writer=writer)
        )
    return verifier.walks, verifier.pruned


def _forked(
    verifier: _Verifier,
    shares: list[list[str | None]],
    since: datetime | None,
    until: datetime | None,
) -> list[tuple[dict[str | None, _Walk], dict[str, Any]]]:
    """Each share walked in a forked process of its own (stores open their connections
    anew in a child), the walks sent back."""
    _SHARED.update(verifier=verifier, since=since, until=until)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads about
            with multiprocessing.get_context("fork").Pool(len(shares)) as pool:
                return pool.map(_walk_share, shares, chunksize=1)
    finally:
        _SHARED.clear()


def _covers(
    entry: dict[str, Any],
    first: int,
    last: int,
    before: str | None = None,
    after: str | None = None,
) -> bool:
    """Whether a prune declaration covers numbers ``first`` to ``last``; where its edges are
    the hole's, the hashes on either side (``before``, ``after``, when given) must match it."""
    start, end = entry.get("first"), entry.get("last")
    if not (isinstance(start, int) and isinstance(end, int) and start <= first <= last <= end):
        return False
    if before is not None and start == first and entry.get("prev") != before:
        return False
    return after is None or end != last or entry.get("head") == after


def verify(
    store: Chained,
    *,
    keyring: Keyring | None = None,
    origin: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tenant: str | None = None,
    copy: Iterable[dict[str, Any]] | str | Path | None = None,
    grace: timedelta | None = None,
    now: datetime | None = None,
    workers: int = 1,
) -> Report:
    """Verify the chains of ``store`` (between ``since`` and ``until``; of the writers that
    wrote for ``tenant``) against ``keyring``, and against the checkpoints in ``copy`` (a
    copy file, or their API forms). ``grace`` is how late a checkpoint may be beyond its
    interval (default: one interval). A time-bounded run checks what lies in the range: it
    cannot see a deleted tail or a chain's start outside it.

    ``workers`` > 1 walks the writers' chains in that many forked processes, each reading
    its own share (what ``auditwire verify`` does on a machine with several cores): hashing
    is CPU-bound and Python runs it on one core per process. Fork from a process without
    other threads at work (the command line is one); where ``fork()`` is missing, one
    process walks them all."""
    verifier = _Verifier(
        store, keyring, origin or default_origin(), grace, since is not None or until is not None
    )
    if workers > 1 and hasattr(os, "fork"):
        groups = _shares(store.writers(since=since, until=until), workers)
        for walks, pruned in _forked(verifier, groups, since, until):
            verifier.walks.update(walks)
            for writer, entries in pruned.items():
                verifier.pruned.setdefault(writer, []).extend(entries)
    else:
        verifier.walk(store.chain(since=since, until=until))
    for walk in verifier.walks.values():
        if walk.report.writer is not None:
            verifier.resolve(walk)
    if copy is not None:
        verifier.compare_copy(read_copy(copy) if isinstance(copy, (str, Path)) else copy)
    for walk in list(verifier.walks.values()):
        verifier.finish(walk, now or utcnow())
    writers = [w.report for w in verifier.walks.values()]
    if tenant is not None:
        writers = [w for w in writers if tenant in w.tenants]
    warnings = (
        []
        if keyring is not None
        else [
            Finding(
                "unkeyed", "no keyring: links are checked, but a chain rewritten whole would pass"
            )
        ]
    )
    return Report(writers, warnings)


#: How far past a record :func:`check_record` looks for the checkpoint that vouches for it.
CHECK_REACH = 10_000


@dataclass(frozen=True, slots=True)
class RecordCheck:
    """Whether one record verifies: ``verified`` (a valid checkpoint after it vouches for
    the chain through it), ``linked`` (sealed and linked to its neighbours, no checkpoint
    checked yet), ``failed`` or ``unsealed``; ``detail`` says why, for people."""

    status: Literal["verified", "linked", "failed", "unsealed"]
    detail: str


def check_record(
    store: Chained,
    api: dict[str, Any],
    *,
    keyring: Keyring | None = None,
    origin: str | None = None,
) -> RecordCheck:
    """Check one record (its API form, as stored): its seal, its links to its neighbours,
    and the next checkpoint of its writer, up to :data:`CHECK_REACH` records on. What the
    viewer's record page shows; :func:`verify` checks whole chains."""
    integrity = api.get("integrity")
    if not isinstance(integrity, dict):
        return RecordCheck("unsealed", "This record carries no seal.")
    problem = seal_problem(api)
    if problem is not None:
        return RecordCheck("failed", f"Its seal does not hold: {problem}.")
    expected = origin or default_origin()
    if integrity.get("origin") != expected:
        return RecordCheck("failed", f"It belongs to the log {integrity.get('origin')!r}.")
    writer, seq = integrity["writer"], integrity["seq"]
    if seq > 1:
        before = list(store.chain(writer=writer, first=seq - 1, last=seq - 1))
        if len(before) == 1 and before[0]["integrity"].get("hash") != integrity["prev"]:
            return RecordCheck("failed", f"It does not link to record {seq - 1} of its writer.")
    head, number = integrity["hash"], seq
    for following in store.chain(writer=writer, first=seq + 1, last=seq + CHECK_REACH):
        seal = following["integrity"]
        if seal["seq"] != number + 1 or seal.get("prev") != head or seal_problem(following):
            return RecordCheck(
                "failed", f"The chain after it breaks at record {seal['seq']} of its writer."
            )
        head, number = seal["hash"], seal["seq"]
        if following.get("action") != CHECKPOINT_ACTION:
            continue
        if keyring is None:
            return RecordCheck(
                "linked",
                f"Sealed and linked up to checkpoint {number}; no key here to check checkpoints.",
            )
        body, trouble = read_checkpoint(following, keyring)
        if trouble is not None or body is None or body.get("head") != seal.get("prev"):
            detail = trouble.detail if trouble is not None else "it signed another chain"
            return RecordCheck("failed", f"The checkpoint at {number} does not hold: {detail}.")
        return RecordCheck(
            "verified", f"Vouched for by the checkpoint at {number}, signed {body['time']}."
        )
    return RecordCheck("linked", "Sealed and linked; no checkpoint vouches for it yet.")
