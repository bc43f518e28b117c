"""The optional native encoder: ``auditwire-native``, a Rust extension built from ``native/``.

Sealing a request's record and writing its Elasticsearch entry walk the record's sixteen
fields twice in Python, building dictionaries only to serialise them: two thirds of what a
spooled request costs over the bare app. The extension writes the canonical bytes, their
SHA-256 and the bulk entry straight from the record's fields. The pure-Python path
(:mod:`auditwire.canonical`, :mod:`auditwire.seal`, :mod:`auditwire.ecs`) stays the definition
of every byte: the extension declines (returns ``None``) whatever it does not cover, such as
metadata, and the caller takes the pure path; the suite compares both on generated records.

Installed only by choice (``pip install ./native``, which needs a Rust toolchain); without it,
or with ``AUDITWIRE_NATIVE=0`` in the environment, everything runs the pure path, with the
same bytes. An extension of another version is ignored rather than trusted.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from types import ModuleType

from auditwire.record import (
    Actor,
    AuditRecord,
    DeviceInfo,
    IntegrityInfo,
    RequestInfo,
    Target,
    TraceInfo,
)

__all__ = ["NATIVE", "VERSION"]

#: The ``auditwire-native`` version this package was tested with: any other is not used.
VERSION = "0.1.0"
#: The classes whose fields the extension reads, in the order it takes them.
_CLASSES = (AuditRecord, Actor, Target, RequestInfo, TraceInfo, DeviceInfo, IntegrityInfo)
_logger = logging.getLogger("auditwire")


def _load() -> ModuleType | None:
    """The extension, bound to the record's classes, or ``None`` (with a warning when one is
    installed but cannot be used)."""
    if os.environ.get("AUDITWIRE_NATIVE", "1") == "0":
        return None
    try:
        import auditwire_native
    except ImportError:
        return None
    found = getattr(auditwire_native, "__version__", None)
    if found != VERSION:
        _logger.warning(
            "auditwire-native %s is installed; this auditwire uses only %s: running pure Python",
            found,
            VERSION,
        )
        return None
    # It reads every field the record has, or none: a field it does not know would be left
    # out of the bytes.
    declared = {cls.__name__: {f.name for f in dataclasses.fields(cls)} for cls in _CLASSES}
    if declared != {name: set(fields) for name, fields in auditwire_native.FIELDS.items()}:
        _logger.warning("auditwire-native reads other record fields: running pure Python")
        return None
    auditwire_native.bind(list(_CLASSES))
    return auditwire_native


#: The extension module, or ``None`` for the pure path.
NATIVE: ModuleType | None = _load()
