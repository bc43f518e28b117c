"""The optional native encoder: ``auditwire-native``, a Rust extension built from ``native/``.

Sealing a request's record and writing its Elasticsearch entry walk the record's sixteen
fields twice in Python, building dictionaries only to serialise them: two thirds of what a
spooled request cost over the bare app. The extension writes the canonical bytes, their
SHA-256 and the bulk entry straight from the record's fields, and a record id's text from its
time and random bits. The pure-Python path (:mod:`auditwire._ids`,
:mod:`auditwire.canonical`, :mod:`auditwire.seal`, :mod:`auditwire.ecs`) stays the definition
of every byte: the extension declines (returns ``None``) whatever it does not cover, such as
metadata, and the caller takes the pure path; the suite compares both on generated values.

Installed only by choice (``pip install ./native``, which needs a Rust toolchain); without it,
or with ``AUDITWIRE_NATIVE=0`` in the environment, everything runs the pure path, with the
same bytes. An extension of another version is ignored rather than trusted.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from types import ModuleType

__all__ = ["NATIVE", "VERSION", "for_records"]

#: The ``auditwire-native`` version this package was tested with: any other is not used.
VERSION = "0.1.0"
_logger = logging.getLogger("auditwire")


def _load() -> ModuleType | None:
    """The extension, or ``None`` (with a warning when one is installed but not the version
    this package expects)."""
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
    return auditwire_native


#: The extension module, or ``None`` for the pure path.
NATIVE: ModuleType | None = _load()


#: What :func:`for_records` answered, by the classes it was given (asked once per module).
_bound: dict[tuple[type, ...], ModuleType | None] = {}


def for_records(*classes: type) -> ModuleType | None:
    """:data:`NATIVE`, bound to the record's classes (the record and its parts: it reads their
    fields from their slots), or ``None``."""
    if classes not in _bound:
        _bound[classes] = _bind(classes)
    return _bound[classes]


def _bind(classes: tuple[type, ...]) -> ModuleType | None:
    """It reads every field a class has, or none of the classes: a field it did not know would
    be left out of the bytes."""
    if NATIVE is None:
        return None
    declared = {cls.__name__: {f.name for f in dataclasses.fields(cls)} for cls in classes}
    if declared != {name: set(fields) for name, fields in NATIVE.FIELDS.items()}:
        _logger.warning("auditwire-native reads other record fields: running pure Python")
        return None
    try:
        NATIVE.bind({cls.__name__: cls for cls in classes})
    except TypeError as exc:  # a field that is not a slot: nothing to read it from
        _logger.warning("auditwire-native cannot read the record: %s; running pure Python", exc)
        return None
    return NATIVE
