"""Which address a request really came from.

The socket peer is the answer unless the peer is a proxy the application trusts. Only then is
the forwarding header read — the one the proxy is configured to set, never both, since a
client can send whichever header the proxy does not overwrite — and walked from the right:
each trusted hop is skipped, the first untrusted one is the client. The left-most entry is
whatever the client claimed and is never believed on its own. Nothing is trusted by default.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

__all__ = [
    "MAX_ADDRESS",
    "MAX_HEADER",
    "UNREADABLE",
    "ClientAddress",
    "IPAddress",
    "IPNetwork",
    "ProxyHeader",
    "TrustedProxies",
    "canonical",
    "forwarded_for",
    "parse_ip",
    "resolve",
    "x_forwarded_for",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ProxyHeader = Literal["x-forwarded-for", "forwarded"]

#: The most of a forwarding header that is read (from the right).
MAX_HEADER = 4096
_FOR = re.compile(r"""(?:^|;)\s*for\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)""", re.IGNORECASE)


#: Longer than any address with port, brackets and zone: not worth parsing, and never cached
#: (a client could otherwise fill the caches with long garbage entries).
MAX_ADDRESS = 64


def parse_ip(text: str) -> IPAddress | None:
    """An address from a header entry: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``,
    ``fe80::1%eth0``; ``None`` for anything else (``unknown``, ``_hidden``, garbage)."""
    return None if len(text) > MAX_ADDRESS else _parse_ip(text)


@lru_cache(maxsize=65536)
def _parse_ip(text: str) -> IPAddress | None:
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def canonical(text: str) -> str | None:
    """:func:`parse_ip` as canonical text (``ipaddress`` is slow to format and to hash its
    objects; addresses repeat, so the text form is cached by the input)."""
    return None if len(text) > MAX_ADDRESS else _canonical(text)


@lru_cache(maxsize=65536)
def _canonical(text: str) -> str | None:
    address = _parse_ip(text)
    return None if address is None else str(address)


class TrustedProxies:
    """Addresses and networks (IPv4 and IPv6) of the proxies in front of the application.

    ``"*"`` trusts every peer: only for apps reachable solely through the proxy.
    """

    __slots__ = ("_addresses", "_all", "_networks", "resolved", "trusts")

    def __init__(self, proxies: Iterable[str] = ()) -> None:
        self._all = False
        self._addresses: set[IPAddress] = set()
        self._networks: list[IPNetwork] = []
        for item in proxies:
            item = item.strip()
            if item == "*":
                self._all = True
            elif "/" in item:
                try:
                    self._networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    raise ValueError(f"trusted proxy {item!r} is not an IP network") from None
            else:
                address = parse_ip(item)
                if address is None:
                    raise ValueError(f"trusted proxy {item!r} is not an IP address")
                self._addresses.add(address)
        #: ``trusts(canonical_text)``, cached per instance.
        self.trusts = lru_cache(maxsize=65536)(self._trusts)
        #: ``resolved(peer, header_line, header)``: :func:`resolve` of one short header line
        #: through these proxies, cached (a client sends the same chain request after
        #: request, and walking it cost a sixth of a request's capture).
        self.resolved = lru_cache(maxsize=4096)(self._resolved)

    def _resolved(self, peer: str, line: str, header: ProxyHeader) -> ClientAddress:
        return _walk(peer, (line,), self, header)

    def _trusts(self, text: str) -> bool:
        return parse_ip(text) in self

    def __bool__(self) -> bool:
        return self._all or bool(self._addresses) or bool(self._networks)

    def __contains__(self, address: IPAddress | None) -> bool:
        if address is None:
            return False
        if self._all or address in self._addresses:
            return True
        return any(address in network for network in self._networks)


#: Stands for what could not be read: the hops left of the window, or a header with no entry.
UNREADABLE = "unknown"


def _elements(values: Sequence[str]) -> list[str]:
    """Comma-separated elements of repeated header lines, joined in order; empty ones (a
    trailing comma, an empty line) are skipped. Only the right-most :data:`MAX_HEADER`
    characters are read: the hops nearest to us are the ones that matter, and a client can pad
    the left at will. What lies beyond that window, and a header that names no hop at all, is
    an unreadable hop: walking from the right, the client is then unknown, never the proxy."""
    joined = ",".join(values)
    cut = len(joined) > MAX_HEADER
    if cut:
        joined = joined[-MAX_HEADER:].split(",", 1)[-1]  # drop the element cut in half
    elements = [element for element in joined.split(",") if element.strip()]
    return [UNREADABLE, *elements] if cut or not elements else elements


def forwarded_for(values: Sequence[str]) -> list[str]:
    """The ``for=`` entries of RFC 7239 ``Forwarded`` header lines, in order."""
    entries: list[str] = []
    for element in _elements(values):
        match = _FOR.search(element)
        entries.append(match.group(1).replace('\\"', '"') if match else "unknown")
    return entries


def x_forwarded_for(values: Sequence[str]) -> list[str]:
    """The entries of ``X-Forwarded-For`` header lines, repeated lines joined in order."""
    return _elements(values)


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """``client`` is the resolved client (``None`` when a trusted chain ends in an entry that is
    not an address); ``peer`` is the socket peer."""

    client: str | None
    peer: str | None


@lru_cache(maxsize=4096)
def _direct(peer: str | None) -> ClientAddress:
    """The address of a client that came without a trusted proxy (addresses repeat, and the
    answer is immutable: one object serves every request from a peer)."""
    return ClientAddress(peer, peer)


#: Longer forwarding header lines are walked every time, never cached (a client could
#: otherwise fill the cache with long garbage).
MAX_CACHED_LINE = 256


def resolve(
    peer: str | None,
    header_values: Sequence[str],
    trusted: TrustedProxies,
    header: ProxyHeader = "x-forwarded-for",
) -> ClientAddress:
    """The client address for a peer and the values of its forwarding header lines."""
    if (
        peer
        and len(peer) <= MAX_ADDRESS
        and len(header_values) == 1
        and len(header_values[0]) <= MAX_CACHED_LINE
    ):
        return trusted.resolved(peer, header_values[0], header)
    return _walk(peer, header_values, trusted, header)


def _walk(
    peer: str | None,
    header_values: Sequence[str],
    trusted: TrustedProxies,
    header: ProxyHeader,
) -> ClientAddress:
    peer_text = canonical(peer) if peer else None
    if peer_text is None or not header_values or not trusted.trusts(peer_text):
        return _direct(peer_text)
    entries = (
        forwarded_for(header_values) if header == "forwarded" else x_forwarded_for(header_values)
    )
    client = peer_text
    for entry in reversed(entries):
        hop = canonical(entry.strip())
        if hop is None:
            # An obfuscated or malformed hop (``unknown``, ``_gw1``, garbage): the client is
            # behind it and cannot be named. Better unknown than a proxy misattributed.
            return ClientAddress(None, peer_text)
        client = hop
        if not trusted.trusts(hop):
            break
    return ClientAddress(client, peer_text)
