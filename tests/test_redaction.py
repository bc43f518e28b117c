from __future__ import annotations

import pytest

from auditwire import AuditLog, Redactor, mask_secret


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
        "token_count": 3,  # a count of tokens, not a token (whole words, the last ones)
        "enabled": True,
    }


@pytest.mark.parametrize(
    "key",
    ["tokens_used", "token_type", "secretary", "apiKeyName", "footprint", "secret_santa_count"],
)
def test_keys_that_only_look_like_secrets_stay_readable(key: str) -> None:
    assert Redactor().redact({key: "readable value 1234"}) == {key: "readable value 1234"}


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("access_token", "***1234"),
        ("refreshToken", "***1234"),
        ("X-API-Key", "***1234"),
        ("APIKey", "***1234"),
        ("stripe_secret", "***1234"),
        ("client_credentials", "***1234"),
        ("password_hash", "[REDACTED]"),
        ("sessionId", "[REDACTED]"),
        ("user_password", "[REDACTED]"),
    ],
)
def test_secrets_are_found_by_whole_words(key: str, shown: str) -> None:
    assert Redactor().redact({key: "readable value 1234"}) == {key: shown}


def test_the_catalogs_templates_show_the_keys_name() -> None:
    log = AuditLog("sqlite:///:memory:")
    record = log.record(
        "api_key.rotated",
        actor={"email": "ops@acme.test"},
        metadata={"apiKeyName": "CI deploy key", "apiKey": "sk_live_51HxRotatedKey4242"},
    )
    assert record.message == "The API key CI deploy key ending with ***4242 was rotated"
    assert record.metadata == {"apiKeyName": "CI deploy key", "apiKey": "***4242"}
