"""Secrets never reach a store whole.

The billing product shows API keys as ``***1337``: the last four characters only. auditwire
applies that rule to every metadata value whose key looks like a secret, and masks passwords
completely. The rule is idempotent (an already masked value is left as it is), so a record read
back from a store and re-validated keeps exactly the value it was stored with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "DEFAULT_REDACTOR",
    "HIDDEN_KEY_PARTS",
    "MASK",
    "MIN_LENGTH_TO_SHOW_TAIL",
    "REDACTED",
    "SECRET_KEY_PARTS",
    "Redactor",
    "mask_secret",
]

MASK = "***"
REDACTED = "[REDACTED]"
#: Shorter secrets are masked completely: four characters of an eight-character token would
#: give half of it away.
MIN_LENGTH_TO_SHOW_TAIL = 12

_MASKED = re.compile(r"^\*{3}[^*]{0,4}$")

#: Key fragments (compared case-insensitively, ignoring ``_`` and ``-``) whose values are secrets
#: shown by their last four characters.
SECRET_KEY_PARTS: tuple[str, ...] = (
    "apikey",
    "token",
    "secret",
    "privatekey",
    "accesskey",
    "clientsecret",
    "signingkey",
    "credential",
)
#: Key fragments whose values are never shown at all.
HIDDEN_KEY_PARTS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "authorization",
    "cookie",
    "sessionid",
    "otp",
    "mfacode",
    "cvv",
)


def mask_secret(value: str) -> str:
    """``"sk_live_abcd1337"`` → ``"***1337"``; short or already masked values stay safe."""
    if _MASKED.match(value) or value == REDACTED:
        return value
    if len(value) < MIN_LENGTH_TO_SHOW_TAIL:
        return MASK
    return MASK + value[-4:]


def _normalise_key(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


class Redactor:
    """Masks secret-looking values of a metadata tree; configured once, applied per record."""

    __slots__ = ("_hidden", "_secret")

    def __init__(
        self,
        *,
        secret_keys: Iterable[str] = (),
        hidden_keys: Iterable[str] = (),
    ) -> None:
        self._secret = SECRET_KEY_PARTS + tuple(_normalise_key(k) for k in secret_keys)
        self._hidden = HIDDEN_KEY_PARTS + tuple(_normalise_key(k) for k in hidden_keys)

    def classify(self, key: str) -> str | None:
        """``"hidden"``, ``"secret"`` or ``None`` for a key name.

        A fragment must start or end the key (``x_api_key``, ``password_hash``); matching
        anywhere inside would mask innocent keys such as ``footprint``.
        """
        norm = _normalise_key(key)
        if any(norm.startswith(part) or norm.endswith(part) for part in self._hidden):
            return "hidden"
        if any(norm.startswith(part) or norm.endswith(part) for part in self._secret):
            return "secret"
        return None

    def redact(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """A redacted copy of ``metadata``; nested mappings and lists are walked."""
        return {key: self._value(value, self.classify(key)) for key, value in metadata.items()}

    def _value(self, value: Any, kind: str | None) -> Any:
        if isinstance(value, Mapping):
            return {k: self._value(v, kind or self.classify(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._value(v, kind) for v in value]
        if kind is None or value is None or isinstance(value, bool):
            return value
        if kind == "hidden":
            return REDACTED
        return mask_secret(value if isinstance(value, str) else str(value))


DEFAULT_REDACTOR = Redactor()
