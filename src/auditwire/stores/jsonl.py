"""Records as JSON lines, to a file or a stream, through python-json-logger.

A write-only sink: one API JSON object per line, for log shippers that tail files or read
stdout. It goes through a private, non-propagating :class:`logging.Logger`, so the application's
logging configuration neither sees nor filters audit records.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from auditwire.errors import MissingDependencyError

if TYPE_CHECKING:
    from auditwire.record import AuditRecord

__all__ = [
    "RECORD_LINES",
    "JsonLinesSink",
    "json_formatter",
]


def json_formatter(feature: str = "JSON-lines output", **options: Any) -> logging.Formatter:
    """A python-json-logger formatter; a missing extra fails here, naming ``feature``."""
    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:
        raise MissingDependencyError(feature, "jsonlogger") from None
    return JsonFormatter(**options)


#: Options for output lines that are exactly the dict logged as the message.
RECORD_LINES: dict[str, Any] = {"fmt": [], "json_ensure_ascii": False}


class JsonLinesSink:
    """Writes each record's API JSON as one line to ``target`` (a path, ``"-"`` for stdout, or
    an open text stream)."""

    def __init__(self, target: str | Path | IO[str] = "-") -> None:
        formatter = json_formatter(**RECORD_LINES)
        handler: logging.Handler
        if target == "-":
            handler = logging.StreamHandler(sys.stdout)
            self.target = "-"
        elif isinstance(target, (str, Path)):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(target, encoding="utf-8")
            self.target = str(target)
        else:
            handler = logging.StreamHandler(target)
            self.target = repr(target)
        handler.setFormatter(formatter)
        self._handler = handler
        self._logger = logging.Logger(f"auditwire.jsonl.{id(self)}", logging.INFO)
        self._logger.propagate = False
        self._logger.addHandler(handler)

    def __repr__(self) -> str:
        return f"JsonLinesSink({self.target!r})"

    def write(self, records: Sequence[AuditRecord]) -> None:
        for record in records:
            self._logger.info(record.to_api())

    def close(self) -> None:
        self._logger.removeHandler(self._handler)
        self._handler.close()
