"""Fuzz targets: the parsers that take hostile input, each a function of raw bytes that must
either succeed or refuse with the package's own error — any other exception is a finding.

Run one under atheris (coverage-guided) with ``python -m tests.fuzz.targets NAME [libFuzzer
options]``; ``tests/fuzz/test_fuzz.py`` runs each for a bounded time in the suite and replays
the inputs kept under ``tests/fuzz/corpus/NAME/`` (the findings of earlier runs among them).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from auditwire.capture.client_ip import TrustedProxies, resolve
    from auditwire.delivery.spool import Spool
    from auditwire.errors import InvalidQueryError
    from auditwire.listing.export import parse_export_request
    from auditwire.listing.params import parse_list_request
    from auditwire.query import Cursor

PROXIES = TrustedProxies(["10.0.0.0/8", "::1", "2001:db8:ffff::/48"])


def _named(refusal: InvalidQueryError) -> None:
    """A refusal must name what it refuses (a finding otherwise)."""
    if not refusal.parameter:
        raise AssertionError(f"a refusal that names no parameter: {refusal}")


def forwarding_headers(data: bytes) -> None:
    """Any forwarding header from a trusted proxy: a client that is an address or unknown."""
    fdp = atheris.FuzzedDataProvider(data)
    header = "forwarded" if fdp.ConsumeBool() else "x-forwarded-for"
    lines = [fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 6000)) for _ in range(3)]
    found = resolve("10.0.0.2", lines, PROXIES, header)  # type: ignore[arg-type]
    if found.client is not None:
        ipaddress.ip_address(found.client)  # an address, in canonical form
    if found.client == "10.0.0.2":
        assert lines and any("10.0.0.2" in line for line in lines), "the proxy named as client"


def query_parameters(data: bytes) -> None:
    """Any query string's pairs, cursors included: a listing request, or a named refusal."""
    fdp = atheris.FuzzedDataProvider(data)
    pairs = [
        (fdp.ConsumeUnicodeNoSurrogates(12), fdp.ConsumeUnicodeNoSurrogates(60))
        for _ in range(fdp.ConsumeIntInRange(0, 6))
    ]
    try:
        parse_list_request(pairs, tenant="acme")
    except InvalidQueryError as exc:
        _named(exc)
    with contextlib.suppress(InvalidQueryError):
        Cursor.decode(fdp.ConsumeUnicodeNoSurrogates(200))


def export_bodies(data: bytes) -> None:
    """Any export request body: a request, or a named refusal."""
    try:
        parse_export_request(data, tenant="acme")
    except InvalidQueryError as exc:
        _named(exc)


def spool_reader(data: bytes) -> None:
    """Any bytes as a journal's segment and position file: read, never raise; what comes back
    is only whole frames."""
    fdp = atheris.FuzzedDataProvider(data)
    acked = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 24))
    segment = fdp.ConsumeBytes(len(data))
    with tempfile.TemporaryDirectory() as root:
        journal = Path(root) / "01M8TS65C4PVGTKKQM37J89V1E-999999999"
        journal.mkdir()
        (journal / "lock").touch()
        (journal / "acked").write_bytes(acked)
        (journal / "00000001.seg").write_bytes(segment)
        spool = Spool(root)
        for orphan in spool.orphans():
            for entry in orphan.read(orphan.acked, 10**6, 10**9):
                assert entry.end.offset <= len(segment)
            orphan.close()


TARGETS: dict[str, Callable[[bytes], None]] = {
    "export_bodies": export_bodies,
    "forwarding_headers": forwarding_headers,
    "query_parameters": query_parameters,
    "spool_reader": spool_reader,
}

if __name__ == "__main__":
    target = TARGETS[sys.argv[1]]
    os.environ.setdefault("AUDITWIRE_SPOOL", tempfile.mkdtemp())
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()
