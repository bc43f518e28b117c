"""Filters over audit records: :class:`AuditQuery`, plain data validated when made, and the
:class:`Cursor` and :class:`Page` of a listing.

Each store translates a query its own way (:mod:`auditwire.stores.translate`), so the same
question gets the same answer from SQLite and Elasticsearch.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from auditwire._ids import ID_PATTERN
from auditwire._time import format_timestamp, normalise_timestamp, parse_timestamp
from auditwire.errors import InvalidQueryError
from auditwire.record import OUTCOMES, AuditRecord

__all__ = ["MAX_LIMIT", "MAX_VALUES", "AuditQuery", "Cursor", "Page"]

MAX_VALUES = 100
MAX_LIMIT = 1000


def _values(name: str, values: Iterable[str] | str | None) -> tuple[str, ...]:
    if values is None:
        return ()
    items = (values,) if isinstance(values, str) else tuple(values)
    if len(items) > MAX_VALUES:
        raise InvalidQueryError(name, f"at most {MAX_VALUES} values, got {len(items)}")
    for item in items:
        if not isinstance(item, str) or not item or len(item) > 320:
            raise InvalidQueryError(name, f"{item!r} is not a non-empty string of <= 320 chars")
    return items


def _network(value: str) -> str:
    """An address or CIDR network in canonical text (a single address as /32 or /128)."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise InvalidQueryError(
            "source_ips", f"{value!r} is not an IP address or network"
        ) from None


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a newest-first listing stands: the last record's timestamp and id."""

    timestamp: datetime
    id: str

    def encode(self) -> str:
        """Its opaque text, for APIs."""
        raw = f"{format_timestamp(self.timestamp)}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str, parameter: str = "cursor") -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            stamp, record_id = raw.split("|")
            timestamp = parse_timestamp(stamp)
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise InvalidQueryError(parameter, "is not a cursor this API issued") from None
        if not ID_PATTERN.match(record_id):
            raise InvalidQueryError(parameter, "is not a cursor this API issued")
        return cls(timestamp, record_id)

    @classmethod
    def of(cls, record: AuditRecord) -> Cursor:
        return cls(record.timestamp, record.id)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing: the records, and what a dashboard needs to page through."""

    records: list[AuditRecord]
    total: int
    page: int
    per_page: int

    @property
    def total_pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def next_cursor(self) -> str | None:
        """A cursor continuing after this page (``None`` on the last one)."""
        if not self.records or self.page * self.per_page >= self.total:
            return None
        return Cursor.of(self.records[-1]).encode()


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which records to return; every filter is optional and they all combine (AND).

    Multi-valued filters match any of their values. ``users`` matches the actor's id or email
    (the billing product's "User" filter); ``source_ips`` takes addresses and CIDR networks.
    ``start`` is inclusive and ``end`` exclusive, so consecutive ranges never count a record
    twice. ``after`` continues a listing after a position (keyset paging: stable while new
    records arrive).
    """

    actions: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    actor_ids: tuple[str, ...] = ()
    actor_emails: tuple[str, ...] = ()
    target_ids: tuple[str, ...] = ()
    target_types: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    source_ips: tuple[str, ...] = ()
    tenant: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 50
    after: Cursor | None = None

    def __post_init__(self) -> None:
        for name in (
            "actions",
            "categories",
            "actor_ids",
            "actor_emails",
            "target_ids",
            "target_types",
            "outcomes",
            "users",
            "source_ips",
        ):
            object.__setattr__(self, name, _values(name, getattr(self, name)))
        object.__setattr__(self, "source_ips", tuple(_network(ip) for ip in self.source_ips))
        if self.after is not None and not isinstance(self.after, Cursor):
            raise InvalidQueryError("after", "must be a Cursor (decode cursors with Cursor)")
        for outcome in self.outcomes:
            if outcome not in OUTCOMES:
                raise InvalidQueryError(
                    "outcomes", f"{outcome!r} is not one of {', '.join(OUTCOMES)}"
                )
        if self.tenant is not None:
            _values("tenant", self.tenant)
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None:
                try:
                    object.__setattr__(self, name, normalise_timestamp(value, name))
                except ValueError as exc:
                    raise InvalidQueryError(name, str(exc)) from None
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise InvalidQueryError("start", "is after end, or equal to it (an empty range)")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            raise InvalidQueryError("limit", "must be an integer")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidQueryError("limit", f"must be between 1 and {MAX_LIMIT}")
