"""The one home of the record constructors that skip validation.

A captured request's record is made from parts that are valid by construction: objects
validated when a handler set them, values capture sanitised from the request (canonical
addresses, capped user agents, millisecond UTC timestamps, normalised metadata) and names from
the catalog. Validating them again was most of the cost of a request's record, paid on every
request. These constructors fill the frozen dataclasses' slots directly instead, through a
twin class of the same slot layout (see :func:`_twin`), here and nowhere else.

Only :class:`~auditwire.builder.RecordBuilder` (``build_trusted``), capture's request part
and the chain's sealing (:mod:`auditwire.seal`) call them; property tests
(``tests/test_builder.py``) prove that for any facts they give exactly the record the
validating constructors give.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from auditwire._ids import new_id
from auditwire.record import MAX_MESSAGE, AuditRecord, IntegrityInfo, RequestInfo, check_text

__all__ = ["seal_in_place", "sealed_copy", "set_message", "trusted_record", "trusted_request"]


def _twin(cls: type) -> type:
    """A plain class with ``cls``'s bases and slots, in the same order: an instance is filled by
    ordinary attribute stores (a fifth of what calling each slot's setter costs) and then
    becomes a ``cls`` by ``__class__`` assignment, which Python allows between classes of
    one slot layout."""
    slots = cls.__slots__  # type: ignore[attr-defined]
    twin = type(f"_{cls.__name__}Twin", cls.__bases__, {"__slots__": slots})
    probe = twin()
    probe.__class__ = cls  # refused at import, not on a request, if the layouts ever differ
    return twin


def _fill(target: str, cls: type, values: dict[str, str]) -> list[str]:
    """Lines that make ``target`` a ``cls`` with ``values`` (field name → expression): every
    field must be given, so a new field cannot be left unset."""
    declared = [f.name for f in dataclasses.fields(cls)]
    if sorted(declared) != sorted(values):
        raise AssertionError(f"{cls.__name__} fields are {declared}, not {sorted(values)}")
    name = cls.__name__
    return [
        f"    {target} = {name}Twin()",
        *(f"    {target}.{field} = {values[field]}" for field in declared),
        f"    {target}.__class__ = {name}",
    ]


def _same(cls: type, *exceptions: str) -> dict[str, str]:
    return {f.name: f.name for f in dataclasses.fields(cls) if f.name not in exceptions}


def _compile() -> dict[str, Any]:
    """The constructors, as straight-line code written from the dataclasses' fields: a loop
    over sixteen slots cost four times as much, on every record."""
    classes = (RequestInfo, AuditRecord, IntegrityInfo)
    namespace: dict[str, Any] = {
        "new_id": new_id,
        "set_integrity": AuditRecord.__dict__["integrity"].__set__,
        **{cls.__name__: cls for cls in classes},
        **{f"{cls.__name__}Twin": _twin(cls) for cls in classes},
    }
    seal = _fill(
        "integrity",
        IntegrityInfo,
        {"origin": "origin", "writer": "writer", "seq": "seq", "prev": "prev", "hash": "digest"},
    )
    record_fields = [f.name for f in dataclasses.fields(AuditRecord)]
    lines = [
        "def trusted_request(id, method, route, path, status, duration_ms, peer_ip):",
        *_fill("info", RequestInfo, _same(RequestInfo)),
        "    return info",
        "def trusted_record(action, category, actor, target, outcome, ip_address, user_agent,",
        "                   metadata, timestamp, tenant, request, trace, device):",
        *_fill(
            "record",
            AuditRecord,
            {
                **_same(AuditRecord, "id", "message", "integrity"),
                "id": "new_id()",
                "message": "None",
                "integrity": "None",
            },
        ),
        "    return record",
        "def sealed_copy(record, origin, writer, seq, prev, digest):",
        *seal,
        *_fill(
            "copy",
            AuditRecord,
            {**{n: f"record.{n}" for n in record_fields}, "integrity": "integrity"},
        ),
        "    return copy",
        "def seal_in_place(record, origin, writer, seq, prev, digest):",
        *seal,
        "    set_integrity(record, integrity)",
    ]
    exec(compile("\n".join(lines), "<auditwire._fastpath>", "exec"), namespace)
    return namespace


_compiled = _compile()

#: ``trusted_request(id, method, route, path, status, duration_ms, peer_ip)``: a
#: :class:`RequestInfo` from values capture made valid (request id and method by their
#: patterns, paths capped and NUL-free, status in range, duration in whole microseconds, the
#: peer canonical).
trusted_request: Callable[..., RequestInfo] = _compiled["trusted_request"]

#: ``trusted_record(action, category, actor, target, outcome, ip_address, user_agent, metadata,
#: timestamp, tenant, request, trace, device)``: an :class:`AuditRecord` from valid parts,
#: with a new id and no message yet (see :func:`set_message`).
trusted_record: Callable[..., AuditRecord] = _compiled["trusted_record"]

#: ``sealed_copy(record, origin, writer, seq, prev, digest)``: a copy of a valid record with
#: its place in a hash chain (:mod:`auditwire.seal` made the values: a configured origin, a
#: writer name it checked, a positive sequence number and two SHA-256 hex digests), without
#: validating the record again as ``replace`` would.
sealed_copy: Callable[..., AuditRecord] = _compiled["sealed_copy"]

#: ``seal_in_place(record, ...)`` gives a record nobody else holds yet — one the hand-off
#: just built — its place in the chain, where copying it cost a tenth of a request's capture.
seal_in_place: Callable[..., None] = _compiled["seal_in_place"]

_set_message_slot = AuditRecord.__dict__["message"].__set__


def set_message(record: AuditRecord, message: str) -> None:
    """Fill in the rendered message of a record that was just built and is not shared yet:
    rendering reads the record, and building it twice would double the cost. The message is
    cut to the record's limit and checked like any other."""
    message = message[:MAX_MESSAGE]
    check_text("message", message, MAX_MESSAGE)
    _set_message_slot(record, message)
