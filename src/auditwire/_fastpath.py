"""The one home of the record constructors that skip validation.

A captured request's record is made from parts that are valid by construction: objects
validated when a handler set them, values capture sanitised from the request (canonical
addresses, capped user agents, millisecond UTC timestamps, normalised metadata) and names from
the catalog. Validating them again was most of the cost of a request's record, paid on every
request. These constructors fill the frozen dataclasses' slots directly instead — attrs's
``object.__setattr__`` trick, used here and nowhere else.

Only :class:`~auditwire.builder.RecordBuilder` (``build_trusted``) and capture's request part
call them; a property test (``tests/test_fastpath.py``) proves that for any facts they give
exactly the record the validating constructors give.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from auditwire._ids import new_id
from auditwire.record import MAX_MESSAGE, AuditRecord, IntegrityInfo, RequestInfo, check_text

if TYPE_CHECKING:
    from datetime import datetime

    from auditwire.record import Actor, DeviceInfo, Outcome, Target, TraceInfo

__all__ = ["sealed_copy", "set_message", "trusted_record", "trusted_request"]


def _slot_setters(cls: type, names: str) -> tuple[Callable[[Any, Any], None], ...]:
    """The slots' own setters, in the order named: filling every slot through them skips
    ``object.__setattr__``'s lookup (a third of its cost). Every field must be named, so a new
    field cannot be left unset."""
    order = names.split()
    declared = [f.name for f in dataclasses.fields(cls)]
    if sorted(order) != sorted(declared):
        raise AssertionError(f"{cls.__name__} fields are {declared}, not {order}")
    return tuple(cls.__dict__[name].__set__ for name in order)


_REQUEST_SLOTS = _slot_setters(RequestInfo, "id method route path status duration_ms peer_ip")
_RECORD_ORDER = (
    "id action category actor target outcome ip_address user_agent metadata timestamp message "
    "tenant request trace device integrity"
)
_RECORD_NAMES = _RECORD_ORDER.split()
_RECORD_SLOTS = _slot_setters(AuditRecord, _RECORD_ORDER)
_INTEGRITY_SLOTS = _slot_setters(IntegrityInfo, "origin writer seq prev hash")
_set_message_slot = AuditRecord.__dict__["message"].__set__


def trusted_request(
    id: str | None,
    method: str | None,
    route: str | None,
    path: str | None,
    status: int | None,
    duration_ms: float | None,
    peer_ip: str | None,
) -> RequestInfo:
    """A :class:`RequestInfo` from values capture made valid (request id and method by their
    patterns, paths capped and NUL-free, status in range, duration in whole microseconds, the
    peer canonical)."""
    set_id, set_method, set_route, set_path, set_status, set_duration, set_peer = _REQUEST_SLOTS
    info = object.__new__(RequestInfo)
    set_id(info, id)
    set_method(info, method)
    set_route(info, route)
    set_path(info, path)
    set_status(info, status)
    set_duration(info, duration_ms)
    set_peer(info, peer_ip)
    return info


def trusted_record(
    action: str,
    category: str,
    actor: Actor,
    target: Target | None,
    outcome: Outcome,
    ip_address: str | None,
    user_agent: str | None,
    metadata: dict[str, Any],
    timestamp: datetime,
    tenant: str | None,
    request: RequestInfo | None,
    trace: TraceInfo | None,
    device: DeviceInfo | None,
) -> AuditRecord:
    """An :class:`AuditRecord` from valid parts, with a new id and no message yet (see
    :func:`set_message`)."""
    (
        set_id, set_action, set_category, set_actor, set_target, set_outcome, set_ip,
        set_user_agent, set_metadata, set_timestamp, set_message_, set_tenant, set_request,
        set_trace, set_device, set_integrity,
    ) = _RECORD_SLOTS  # fmt: skip
    record = object.__new__(AuditRecord)
    set_id(record, new_id())
    set_action(record, action)
    set_category(record, category)
    set_actor(record, actor)
    set_target(record, target)
    set_outcome(record, outcome)
    set_ip(record, ip_address)
    set_user_agent(record, user_agent)
    set_metadata(record, metadata)
    set_timestamp(record, timestamp)
    set_message_(record, None)
    set_tenant(record, tenant)
    set_request(record, request)
    set_trace(record, trace)
    set_device(record, device)
    set_integrity(record, None)
    return record


def _compile_sealed_copy() -> Callable[..., AuditRecord]:
    """``sealed_copy`` as straight-line code over the slots' setters (written from the field
    order above, so no field can be left out): a loop over sixteen slots cost four times as
    much, on every record sealed."""
    namespace: dict[str, Any] = {
        "new": object.__new__,
        "AuditRecord": AuditRecord,
        "IntegrityInfo": IntegrityInfo,
        **{
            f"set_{name}": setter for name, setter in zip(_RECORD_NAMES, _RECORD_SLOTS, strict=True)
        },
        **{f"seal_{n}": setter for n, setter in enumerate(_INTEGRITY_SLOTS)},
    }
    lines = [
        "def sealed_copy(record, origin, writer, seq, prev, digest):",
        "    integrity = new(IntegrityInfo)",
        *(
            f"    seal_{n}(integrity, {value})"
            for n, value in enumerate(("origin", "writer", "seq", "prev", "digest"))
        ),
        "    copy = new(AuditRecord)",
        *(f"    set_{name}(copy, record.{name})" for name in _RECORD_NAMES if name != "integrity"),
        "    set_integrity(copy, integrity)",
        "    return copy",
    ]
    exec(compile("\n".join(lines), "<auditwire._fastpath: sealed_copy>", "exec"), namespace)
    function: Callable[..., AuditRecord] = namespace["sealed_copy"]
    return function


#: ``sealed_copy(record, origin, writer, seq, prev, digest)``: a copy of a valid record with
#: its place in a hash chain (:mod:`auditwire.seal` made the values: a configured origin, a
#: writer name it checked, a positive sequence number and two SHA-256 hex digests), without
#: validating the record again as ``replace`` would.
sealed_copy = _compile_sealed_copy()


def set_message(record: AuditRecord, message: str) -> None:
    """Fill in the rendered message of a record that was just built and is not shared yet:
    rendering reads the record, and building it twice would double the cost. The message is
    cut to the record's limit and checked like any other."""
    message = message[:MAX_MESSAGE]
    check_text("message", message, MAX_MESSAGE)
    _set_message_slot(record, message)
