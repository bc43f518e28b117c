"""User agents: the raw string, capped, and its parse into browser, OS and device.

Parsing uses ``ua-parser`` (the maintained port of the browserscope rules, with its native
accelerator when installed) behind an LRU cache: real traffic repeats a few hundred agents, so
after warm-up a parse costs a dictionary lookup.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from auditwire.errors import MissingDependencyError
from auditwire.record import MAX_TEXT, DeviceInfo

__all__ = [
    "KEPT_USER_AGENT",
    "UserAgentParser",
    "sanitize",
]

#: Stored user agents are cut to this many characters (real ones are under 300).
KEPT_USER_AGENT = 512
_OTHER = "Other"


def _version(part: Any) -> str | None:
    numbers = [n for n in (part.major, part.minor, part.patch) if n]
    return ".".join(numbers) or None


def _text(value: str | None) -> str | None:
    return None if value is None or value == _OTHER else value[:MAX_TEXT]


_UNPRINTABLE = re.compile(r"[^\x20-\x7e\xa0-\U0010ffff]+")


def sanitize(value: str | None) -> str | None:
    """A user agent safe to store: control characters removed, length capped (cached: real
    traffic repeats a few hundred agents). Only the part that can be kept is the cache key, so
    huge agents cannot fill the cache."""
    return None if value is None else _sanitize(value[: KEPT_USER_AGENT * 2])


@lru_cache(maxsize=4096)
def _sanitize(value: str) -> str | None:
    if value.isprintable():
        value = value[:KEPT_USER_AGENT]
    else:
        value = _UNPRINTABLE.sub("", value[: KEPT_USER_AGENT * 2])[:KEPT_USER_AGENT]
    return value.strip() or None


class UserAgentParser:
    """Parses user agents into :class:`~auditwire.record.DeviceInfo` (browser, OS, device)."""

    __slots__ = ("parse",)

    def __init__(self, *, cache_size: int = 4096) -> None:
        try:
            from ua_parser import parse as ua_parse
        except ImportError:
            raise MissingDependencyError("user-agent parsing", "web") from None

        @lru_cache(maxsize=cache_size)
        def parse(user_agent: str) -> DeviceInfo | None:
            result = ua_parse(user_agent)
            ua, os, device = result.user_agent, result.os, result.device
            info = DeviceInfo(
                browser=_text(ua.family) if ua else None,
                browser_version=_version(ua) if ua else None,
                os=_text(os.family) if os else None,
                os_version=_version(os) if os else None,
                device=_text(device.family) if device else None,
            )
            return None if info == DeviceInfo() else info

        self.parse = parse
        # ua-parser compiles its rules on the first parse (a few hundred milliseconds): pay
        # that now, at start-up, not in the batch of the first request.
        ua_parse("Mozilla/5.0")
