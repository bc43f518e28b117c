"""Tamper evidence: keyed checkpoints over the records' hash chains, and their verification.

Records are sealed into per-writer hash chains (:mod:`auditwire.seal`) by the
:class:`~auditwire.integrity.sealer.Sealer` every log writes through; with a key, checkpoints
(:mod:`~auditwire.integrity.checkpoint`) vouch for each chain's head;
:mod:`~auditwire.integrity.verify` walks a store's chains and says what holds.
"""

from auditwire.integrity.checkpoint import CHECKPOINT_ACTION
from auditwire.integrity.keys import IntegrityKey, Keyring, KeyringError
from auditwire.integrity.sealer import Integrity, Sealer
from auditwire.integrity.verify import Report, check_record, verify

__all__ = [
    "CHECKPOINT_ACTION",
    "Integrity",
    "IntegrityKey",
    "Keyring",
    "KeyringError",
    "Report",
    "Sealer",
    "check_record",
    "verify",
]
