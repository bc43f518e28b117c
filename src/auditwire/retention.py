"""How long records are kept: one age for all, and other ages for named tenants.

Audit records are append-only everywhere else; retention is the one sanctioned way to remove
them, and only those older than the policy says. Stores apply a policy their own way
(Elasticsearch drops whole partitions and deletes by query within them, SQLite deletes under a
grant its triggers check), but they agree on what remains.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = [
    "RetentionPolicy",
    "RetentionResult",
    "parse_age",
]

_AGE = re.compile(r"^\s*(\d+)\s*([dhw])\s*$")


def parse_age(text: str) -> timedelta:
    """``"90d"``, ``"12w"``, ``"36h"``: ages as the command line takes them."""
    match = _AGE.match(text)
    if match is None:
        raise ValueError(f"age {text!r} is not a number of days, weeks or hours (90d, 12w, 36h)")
    number, unit = int(match.group(1)), match.group(2)
    return {
        "d": timedelta(days=number),
        "w": timedelta(weeks=number),
        "h": timedelta(hours=number),
    }[unit]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Records older than ``max_age`` go, except for tenants named in ``tenants``, whose
    records go when older than their own age (shorter or longer)."""

    max_age: timedelta
    tenants: Mapping[str, timedelta] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, age in [("max_age", self.max_age), *self.tenants.items()]:
            if not isinstance(age, timedelta) or age <= timedelta(0):
                raise ValueError(f"retention age for {name!r} must be a positive timedelta")

    @property
    def longest(self) -> timedelta:
        return max([self.max_age, *self.tenants.values()])

    def groups(
        self, now: datetime
    ) -> list[tuple[datetime, tuple[str, ...] | None, tuple[str, ...]]]:
        """``(cutoff, only these tenants or None for all, except these)`` — one delete each.
        The default group covers records of any tenant (and none) not named."""
        named = tuple(sorted(self.tenants))
        out: list[tuple[datetime, tuple[str, ...] | None, tuple[str, ...]]] = [
            (now - self.max_age, None, named)
        ]
        by_age: dict[timedelta, list[str]] = {}
        for tenant, age in self.tenants.items():
            by_age.setdefault(age, []).append(tenant)
        out.extend((now - age, tuple(sorted(ts)), ()) for age, ts in sorted(by_age.items()))
        return out


@dataclass(frozen=True, slots=True)
class RetentionResult:
    removed_records: int
    removed_partitions: tuple[str, ...] = ()
