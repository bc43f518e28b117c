from __future__ import annotations

import pytest

from auditwire import Redactor, mask_secret


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        pytest.param("sk_live_abcdefgh1337", "***1337", id="long-key"),
        pytest.param("short1337", "***", id="short-secret-fully-masked"),
        pytest.param("***1337", "***1337", id="idempotent"),
        pytest.param("***", "***", id="idempotent-short"),
        pytest.param("[REDACTED]", "[REDACTED]", id="already-redacted"),
    ],
)
def test_mask_secret(value: str, masked: str) -> None:
    assert mask_secret(value) == masked


def test_redactor_walks_nested_metadata() -> None:
    redactor = Redactor(secret_keys=["signature"])
    out = redactor.redact(
        {
            "apiKey": "sk_live_abcdefgh1337",
            "x_api_key": "sk_test_zzzzzzzz9999",
            "webhook": {"signing_key": "whsec_abcdefghij4242", "url": "https://x"},
            "tokens": ["tok_aaaaaaaaaaaa1111", "tok_bbbbbbbbbbbb2222"],
            "credentials": {"user": "u", "pass": "p"},
            "Password": "hunter2",
            "signature": "sig_0000000000003333",
            "footprint": "kept",
            "token_count": 3,
            "enabled": True,
        }
    )
    assert out == {
        "apiKey": "***1337",
        "x_api_key": "***9999",
        "webhook": {"signing_key": "***4242", "url": "https://x"},
        "tokens": ["***1111", "***2222"],
        "credentials": {"user": "***", "pass": "***"},
        "Password": "[REDACTED]",
        "signature": "***3333",
        "footprint": "kept",
        "token_count": "***",
        "enabled": True,
    }
