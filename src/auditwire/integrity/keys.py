"""Checkpoint keys: HMAC-SHA256 by default, Ed25519 with the ``signing`` extra.

A checkpoint is authenticated with the key that is valid at its time. Keys live on a keyring
with validity periods, so a key can be rotated — the new one takes over at its start, the old
one stays on the ring to verify what it signed — and a checkpoint signed outside its key's
period is refused (journald's CVE-2023-31439: old entries resealed with the current key went
unnoticed because the verifier never asked whether the key was valid then).

HMAC needs only the standard library, but whoever verifies holds the secret that signs. An
Ed25519 key signs with a private key the writers hold and verifies with a public key an
auditor can hold without being able to sign.

Configuration: ``$AUDITWIRE_INTEGRITY_KEY`` holds one HMAC secret (``id:secret`` names the
key; a bare secret is named after its digest), or ``$AUDITWIRE_INTEGRITY_KEYRING`` names a JSON
file listing keys (see :meth:`Keyring.from_json`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from auditwire._time import format_timestamp, parse_timestamp
from auditwire.errors import MissingDependencyError

__all__ = ["ALGORITHMS", "IntegrityKey", "Keyring", "KeyringError"]

Algorithm = Literal["hmac-sha256", "ed25519"]
ALGORITHMS: tuple[Algorithm, ...] = ("hmac-sha256", "ed25519")
_MIN_SECRET = 16


class KeyringError(ValueError):
    """A key or keyring that cannot be used, with what is wrong with it."""


def _decode(name: str, text: object) -> bytes:
    if not isinstance(text, str):
        raise KeyringError(f"{name} must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyringError(f"{name} is not base64: {exc}") from exc


@dataclass(frozen=True)
class IntegrityKey:
    """One key: ``secret`` for HMAC; ``private``/``public`` (raw 32 bytes) for Ed25519, where a
    verifier needs only ``public``. ``valid_from``/``valid_until`` bound the checkpoint times
    it may sign (``None``: open)."""

    id: str
    algorithm: Algorithm = "hmac-sha256"
    secret: bytes | None = None
    private: bytes | None = None
    public: bytes | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str) or len(self.id) > 128:
            raise KeyringError("a key needs an id of 1 to 128 characters")
        if self.algorithm not in ALGORITHMS:
            raise KeyringError(f"key {self.id}: algorithm must be one of {', '.join(ALGORITHMS)}")
        if self.algorithm == "hmac-sha256":
            if self.secret is None or len(self.secret) < _MIN_SECRET:
                raise KeyringError(
                    f"key {self.id}: an HMAC secret needs {_MIN_SECRET} bytes or more"
                )
        else:
            if self.private is None and self.public is None:
                raise KeyringError(f"key {self.id}: an Ed25519 key needs a private or public key")
            if self.private is not None and self.public is None:
                object.__setattr__(self, "public", _ed25519_public(self.private))
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise KeyringError(f"key {self.id}: valid_until must come after valid_from")

    @classmethod
    def hmac(cls, secret: str | bytes, key_id: str | None = None, **period: Any) -> IntegrityKey:
        """An HMAC key from a secret (text is taken as UTF-8), named after its digest unless
        ``key_id`` names it."""
        raw = secret.encode() if isinstance(secret, str) else secret
        name = key_id or "hmac-" + hashlib.sha256(raw).hexdigest()[:12]
        return cls(name, "hmac-sha256", secret=raw, **period)

    @property
    def can_sign(self) -> bool:
        return self.secret is not None or self.private is not None

    def valid_at(self, moment: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= moment) and (
            self.valid_until is None or moment < self.valid_until
        )

    def sign(self, message: bytes) -> str:
        """The signature of ``message``, as lowercase hex (HMAC) or base64 (Ed25519)."""
        if self.algorithm == "hmac-sha256":
            assert self.secret is not None
            return hmac.new(self.secret, message, hashlib.sha256).hexdigest()
        if self.private is None:
            raise KeyringError(f"key {self.id} holds only the public half: it verifies, not signs")
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        signed = Ed25519PrivateKey.from_private_bytes(self.private).sign(message)
        return base64.b64encode(signed).decode()

    def verifies(self, message: bytes, signature: str) -> bool:
        if self.algorithm == "hmac-sha256":
            return hmac.compare_digest(self.sign(message), signature)
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        assert self.public is not None
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(
                base64.b64decode(signature, validate=True), message
            )
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True

    def to_json(self, *, public_only: bool = False) -> dict[str, Any]:
        """The keyring file's entry for this key; ``public_only`` leaves the private half
        out (an Ed25519 key for auditors)."""
        out: dict[str, Any] = {"id": self.id, "algorithm": self.algorithm}
        if self.secret is not None and not public_only:
            out["secret"] = base64.b64encode(self.secret).decode()
        if self.private is not None and not public_only:
            out["private"] = base64.b64encode(self.private).decode()
        if self.public is not None:
            out["public"] = base64.b64encode(self.public).decode()
        if self.valid_from is not None:
            out["validFrom"] = format_timestamp(self.valid_from)
        if self.valid_until is not None:
            out["validUntil"] = format_timestamp(self.valid_until)
        return out


def _ed25519_public(private: bytes) -> bytes:
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    except ImportError:
        raise MissingDependencyError("Ed25519 keys", "signing") from None
    key = Ed25519PrivateKey.from_private_bytes(private)
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class Keyring:
    """The keys checkpoints are signed and verified with."""

    def __init__(self, keys: Iterable[IntegrityKey]) -> None:
        self.keys = list(keys)
        if not self.keys:
            raise KeyringError("a keyring needs at least one key")
        ids = [key.id for key in self.keys]
        if len(set(ids)) != len(ids):
            raise KeyringError("key ids on a keyring must be unique")
        self._by_id = {key.id: key for key in self.keys}

    def __repr__(self) -> str:
        return f"Keyring({[key.id for key in self.keys]!r})"

    def get(self, key_id: str) -> IntegrityKey | None:
        return self._by_id.get(key_id)

    def signing_key(self, moment: datetime) -> IntegrityKey | None:
        """The key that signs at ``moment``: of those valid then that can sign, the one whose
        period started last (a new key takes over from its start)."""
        usable = [key for key in self.keys if key.can_sign and key.valid_at(moment)]
        if not usable:
            return None
        return max(
            usable, key=lambda key: key.valid_from or datetime.min.replace(tzinfo=moment.tzinfo)
        )

    @classmethod
    def from_json(cls, data: object) -> Keyring:
        """From ``{"keys": [{"id", "algorithm", "secret" | "private" | "public" (base64),
        "validFrom", "validUntil" (ISO 8601)}, ...]}``."""
        entries = data.get("keys") if isinstance(data, Mapping) else None
        if not isinstance(entries, list):
            raise KeyringError('a keyring is {"keys": [...]}')
        keys = []
        for entry in entries:
            if not isinstance(entry, Mapping):
                raise KeyringError("each key is a JSON object")
            raw = [
                None if entry.get(name) is None else _decode(f"{name} of key", entry[name])
                for name in ("secret", "private", "public")
            ]
            period = [
                None if entry.get(name) is None else parse_timestamp(entry[name], name)
                for name in ("validFrom", "validUntil")
            ]
            keys.append(
                IntegrityKey(
                    entry.get("id"),  # type: ignore[arg-type]  # checked by the key
                    entry.get("algorithm", "hmac-sha256"),
                    secret=raw[0],
                    private=raw[1],
                    public=raw[2],
                    valid_from=period[0],
                    valid_until=period[1],
                )
            )
        return cls(keys)

    def to_json(self, *, public_only: bool = False) -> dict[str, Any]:
        return {"keys": [key.to_json(public_only=public_only) for key in self.keys]}

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Keyring:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise KeyringError(f"cannot read the keyring {path}: {exc}") from exc
        return cls.from_json(data)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Keyring | None:
        """The keyring configured by ``$AUDITWIRE_INTEGRITY_KEYRING`` (a file) or
        ``$AUDITWIRE_INTEGRITY_KEY`` (``[id:]secret``), or ``None``."""
        path = environ.get("AUDITWIRE_INTEGRITY_KEYRING")
        if path:
            return cls.load(path)
        text = environ.get("AUDITWIRE_INTEGRITY_KEY")
        if not text:
            return None
        key_id, sep, secret = text.partition(":")
        return cls([IntegrityKey.hmac(secret, key_id) if sep else IntegrityKey.hmac(text)])
