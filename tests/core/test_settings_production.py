"""Production refuses a phone-hash key that can be guessed: empty, short, repetitive, or the dev key."""

from __future__ import annotations

import base64
import os
import secrets

import pytest
from pydantic import ValidationError

from callcenter.core.settings import DEV_HASH_KEY, MIN_HASH_KEY_CHARS, Settings

PG_URL = "postgresql+psycopg://callcenter@db.example/callcenter"


def _production(phone_hash_key: str) -> Settings:
    return Settings(
        env="production",
        database_url=PG_URL,
        pii_key=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        phone_hash_key=phone_hash_key,
    )


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("abc", id="trivial"),
        pytest.param(secrets.token_urlsafe(32)[: MIN_HASH_KEY_CHARS - 1], id="one-too-short"),
        pytest.param("ab" * 32, id="long-but-repetitive"),
    ],
)
def test_weak_hash_key_is_refused_in_production(key: str) -> None:
    with pytest.raises(
        ValidationError, match="CALLCENTER_PHONE_HASH_KEY must be at least 32 characters"
    ) as info:
        _production(key)
    message = " ".join(e["msg"] for e in info.value.errors(include_input=False))
    if key:
        assert key not in message  # the secret itself is never in the message


def test_development_hash_key_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="CALLCENTER_PHONE_HASH_KEY is the development key"):
        _production(DEV_HASH_KEY)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(secrets.token_urlsafe(32), id="token_urlsafe-32"),
        pytest.param("0123456789abcdefghijKLMNOPQRSTUV", id="exactly-32-varied"),
    ],
)
def test_good_hash_key_is_accepted_in_production(key: str) -> None:
    assert _production(key).phone_hash_key.get_secret_value() == key


@pytest.mark.parametrize("env", ["development", "test"])
def test_short_keys_stay_allowed_outside_production(env: str) -> None:
    assert Settings(env=env, phone_hash_key="abc").phone_hash_key.get_secret_value() == "abc"
