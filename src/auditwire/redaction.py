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

#: Names whose values are secrets, shown by their last four characters: a key is one when it
#: ends with the name's words (``x_api_key``, ``accessToken``, ``stripe-secret``, ``tokens``),
#: not when it merely starts with them (``token_type``, ``tokens_used``) or holds the letters
#: inside a word (``secretary``).
SECRET_KEY_PARTS: tuple[str, ...] = (
    "api_key",
    "token",
    "secret",
    "private_key",
    "access_key",
    "signing_key",
    "credential",
)
#: Names whose values are never shown at all: a key is one when it holds the name's words
#: anywhere (``password``, ``password_hash``, ``sessionId``).
HIDDEN_KEY_PARTS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "authorization",
    "cookie",
    "session_id",
    "otp",
    "mfa_code",
    "cvv",
)

#: The words of a key: ``x_api_key``, ``apiKey``, ``API-Key`` and ``APIKey`` all read api, key.
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def mask_secret(value: str) -> str:
    """``"sk_live_abcd1337"`` → ``"***1337"``; short or already masked values stay safe."""
    if _MASKED.match(value) or value == REDACTED:
        return value
    if len(value) < MIN_LENGTH_TO_SHOW_TAIL:
        return MASK
    return MASK + value[-4:]


def _words(key: str) -> tuple[str, ...]:
    return tuple(word.lower() for word in _WORD.findall(key))


def _ends_with(words: tuple[str, ...], name: tuple[str, ...]) -> bool:
    """Whether ``words`` end with ``name``'s words (its last word in the plural too)."""
    if not name or len(words) < len(name):
        return False
    tail = words[len(words) - len(name) :]
    return tail[:-1] == name[:-1] and tail[-1] in (name[-1], name[-1] + "s")


def _holds(words: tuple[str, ...], name: tuple[str, ...]) -> bool:
    """Whether ``words`` hold ``name``'s words as a run anywhere."""
    return any(_ends_with(words[: end + 1], name) for end in range(len(words)))


class Redactor:
    """Masks secret-looking values of a metadata tree; configured once, applied per record."""

    __slots__ = ("_hidden", "_secret")

    def __init__(
        self,
        *,
        secret_keys: Iterable[str] = (),
        hidden_keys: Iterable[str] = (),
    ) -> None:
        self._secret = tuple(_words(k) for k in (*SECRET_KEY_PARTS, *secret_keys))
        self._hidden = tuple(_words(k) for k in (*HIDDEN_KEY_PARTS, *hidden_keys))

    def classify(self, key: str) -> str | None:
        """``"hidden"``, ``"secret"`` or ``None`` for a key name, by whole words (see
        :data:`SECRET_KEY_PARTS` and :data:`HIDDEN_KEY_PARTS`): ``footprint``, ``secretary``,
        ``token_type`` and ``apiKeyName`` stay readable."""
        words = _words(key)
        if any(_holds(words, name) for name in self._hidden):
            return "hidden"
        if any(_ends_with(words, name) for name in self._secret):
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
