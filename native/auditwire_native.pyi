"""auditwire's native encoder (see ``auditwire._native``): ``None`` means "take the pure path"."""

from typing import Any

__version__: str
#: The fields read from each record class, by class name.
FIELDS: dict[str, tuple[str, ...]]

def bind(classes: dict[str, type]) -> None: ...
def record_id(ms: int, random: int) -> str: ...

def canonical_record(
    record: Any, origin: str, writer: str, seq: int, prev: str
) -> bytes | None: ...
def seal_digest(
    domain: bytes, record: Any, origin: str, writer: str, seq: int, prev: str
) -> str | None: ...

class Documents:
    def __init__(
        self,
        ecs_version: str,
        namespace: str,
        dataset: str,
        schema_version: int,
        outcomes: dict[str, str],
    ) -> None: ...
    def entry(
        self, record: Any, index: str, category: Any, type: Any
    ) -> bytes | None: ...
