from __future__ import annotations

import pytest

from auditwire.capture.client_ip import (
    ClientAddress,
    TrustedProxies,
    forwarded_for,
    parse_ip,
    resolve,
)
from auditwire.capture.client_ip import _walk as _walk  # the road without the cache

PROXIES = TrustedProxies(["10.0.0.0/8", "192.168.1.1", "2001:db8:ffff::/48", "::1"])


@pytest.mark.parametrize(
    ("peer", "values", "header", "expected"),
    [
        pytest.param("203.0.113.9", ["6.6.6.6"], "x-forwarded-for", "203.0.113.9", id="untrusted-peer-spoof-ignored"),
        pytest.param("10.0.0.2", [], "x-forwarded-for", "10.0.0.2", id="trusted-peer-no-header"),
        pytest.param("10.0.0.2", ["203.0.113.9"], "x-forwarded-for", "203.0.113.9", id="one-hop"),
        pytest.param("10.0.0.2", ["6.6.6.6, 203.0.113.9, 10.0.0.7"], "x-forwarded-for", "203.0.113.9", id="chain-first-untrusted-from-right"),
        pytest.param("10.0.0.2", ["6.6.6.6, 203.0.113.9", "10.0.0.7"], "x-forwarded-for", "203.0.113.9", id="repeated-lines-joined-in-order"),
        pytest.param("10.0.0.2", ["10.1.1.1, 10.2.2.2"], "x-forwarded-for", "10.1.1.1", id="all-trusted-leftmost"),
        pytest.param("10.0.0.2", ["203.0.113.9:4711"], "x-forwarded-for", "203.0.113.9", id="ipv4-with-port"),
        pytest.param("::1", ["2001:db8::17"], "x-forwarded-for", "2001:db8::17", id="ipv6-peer-and-client"),
        pytest.param("2001:db8:ffff::2", ["[2001:db8::17]:443"], "x-forwarded-for", "2001:db8::17", id="ipv6-bracketed-port"),
        pytest.param("::ffff:10.0.0.2", ["203.0.113.9"], "x-forwarded-for", "203.0.113.9", id="ipv4-mapped-peer"),
        pytest.param("10.0.0.2", ["not-an-ip, 203.0.113.9"], "x-forwarded-for", "203.0.113.9", id="garbage-beyond-client-ignored"),
        pytest.param("10.0.0.2", ["203.0.113.9, garbage"], "x-forwarded-for", None, id="garbage-hop-unknown-client"),
        pytest.param("10.0.0.2", ['for=192.0.2.60;proto=http;by=203.0.113.43'], "forwarded", "192.0.2.60", id="rfc7239"),
        pytest.param("10.0.0.2", ['for="[2001:db8:cafe::17]:4711"'], "forwarded", "2001:db8:cafe::17", id="rfc7239-ipv6"),
        pytest.param("10.0.0.2", ["for=192.0.2.43, for=10.0.0.9"], "forwarded", "192.0.2.43", id="rfc7239-chain"),
        pytest.param("10.0.0.2", ["for=unknown"], "forwarded", None, id="rfc7239-unknown"),
        pytest.param("10.0.0.2", ["for=_hidden, for=10.0.0.9"], "forwarded", None, id="rfc7239-obfuscated"),
        pytest.param("10.0.0.2", ["proto=https"], "forwarded", None, id="rfc7239-no-for"),
        pytest.param(None, ["203.0.113.9"], "x-forwarded-for", None, id="no-peer"),
        pytest.param("10.0.0.2", ["x" * 5000 + ","], "x-forwarded-for", None, id="oversize-garbage-then-empty"),
        pytest.param("10.0.0.2", ["x" * 5000, ""], "x-forwarded-for", None, id="oversize-garbage-then-empty-line"),
        pytest.param("10.0.0.2", ["10.0.0.9, " * 500], "x-forwarded-for", None, id="trusted-hops-past-the-window"),
        pytest.param("10.0.0.2", [" , "], "x-forwarded-for", None, id="no-entry"),
        pytest.param("10.0.0.2", ["203.0.113.9,"], "x-forwarded-for", "203.0.113.9", id="trailing-comma"),
        pytest.param("unix:/tmp/sock", ["203.0.113.9"], "x-forwarded-for", None, id="non-ip-peer"),
    ],
)  # fmt: skip
def test_resolve(peer: str | None, values: list[str], header: str, expected: str | None) -> None:
    found = resolve(peer, values, PROXIES, header)  # type: ignore[arg-type]
    assert found.client == expected
    # Asked again (a short single line comes from the cache), and walked without the cache.
    assert resolve(peer, values, PROXIES, header) == found  # type: ignore[arg-type]
    assert _walk(peer, values, PROXIES, header) == found  # type: ignore[arg-type]


def test_peer_is_kept_beside_the_client() -> None:
    assert resolve("10.0.0.2", ["203.0.113.9"], PROXIES) == ClientAddress("203.0.113.9", "10.0.0.2")


def test_nothing_is_trusted_by_default() -> None:
    assert resolve("127.0.0.1", ["6.6.6.6"], TrustedProxies()).client == "127.0.0.1"
    assert not TrustedProxies()


def test_trust_everything_star() -> None:
    assert resolve("198.51.100.1", ["6.6.6.6"], TrustedProxies(["*"])).client == "6.6.6.6"


def test_huge_headers_are_cut_not_parsed_whole() -> None:
    value = ", ".join(["203.0.113.9"] * 10_000)
    assert len(forwarded_for([value])) < 1000
    assert resolve("10.0.0.2", [value], PROXIES).client == "203.0.113.9"


@pytest.mark.parametrize("bad", ["nope", "10.0.0.0/33", "1.2.3"])
def test_bad_proxy_configuration_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="trusted proxy"):
        TrustedProxies([bad])


@pytest.mark.parametrize(
    ("text", "ip"),
    [("1.2.3.4", "1.2.3.4"), (" 1.2.3.4:80 ", "1.2.3.4"), ("[::1]:8080", "::1"), ("fe80::1%eth0", "fe80::1"), ("[::1", None), ("", None)],
)  # fmt: skip
def test_parse_ip(text: str, ip: str | None) -> None:
    parsed = parse_ip(text)
    assert (str(parsed) if parsed else None) == ip
