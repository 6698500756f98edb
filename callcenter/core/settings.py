"""Settings read from the environment (prefix ``CALLCENTER_``), refusing unsafe values in production.

Each domain that needs its own knobs declares a small ``BaseSettings`` subclass with its own prefix
(``CALLCENTER_DIALER_`` …) beside its code; this module holds what every part shares.
Nothing here is read at import time: call :func:`get_settings` at start-up and pass the object on.
"""

from __future__ import annotations

import base64
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development-only keys: fine for the demo and tests, refused when env=production.
DEV_PII_KEY = base64.urlsafe_b64encode(b"1022-dev-only-pii-key-32-bytes!!").decode()
DEV_HASH_KEY = "1022-dev-only-phone-hash-key"
DEV_API_SECRET = "1022-dev-only-secret"

# The phone hash is all that protects the opt-out list and the answers' phone hashes, and Vietnamese
# mobile numbers are a small space (under 10^9): with a guessable key every hash is reversed by trying them
# all. Production therefore wants a long random key, e.g. ``secrets.token_urlsafe(32)`` (43 characters).
# Length and variety are what can be checked; "at least 32 characters, at least 8 different ones"
# refuses empty, short and repeated keys without pretending to measure randomness.
MIN_HASH_KEY_CHARS = 32
MIN_HASH_KEY_DISTINCT = 8

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    """What every process of the survey caller needs to know."""

    model_config = SettingsConfigDict(env_prefix="CALLCENTER_", env_file=".env", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'callcenter.db'}"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Celery broker; "memory://" runs tasks in-process (the embedded demo).
    broker_url: str | None = None
    timezone: str = "Asia/Ho_Chi_Minh"
    default_region: str = "VN"
    pii_key: SecretStr = SecretStr(DEV_PII_KEY)
    phone_hash_key: SecretStr = SecretStr(DEV_HASH_KEY)
    var_dir: Path = PROJECT_ROOT / "var"
    prompts_dir: Path = PROJECT_ROOT / "prompts"
    log_level: str = "INFO"

    @field_validator("pii_key")
    @classmethod
    def _key_is_32_bytes(cls, value: SecretStr) -> SecretStr:
        try:
            raw = base64.urlsafe_b64decode(value.get_secret_value())
        except (ValueError, TypeError) as exc:
            raise ValueError("CALLCENTER_PII_KEY must be url-safe base64 of 32 bytes") from exc
        if len(raw) != 32:
            raise ValueError("CALLCENTER_PII_KEY must decode to exactly 32 bytes (AES-256)")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env != "production":
            return self
        problems = []
        if self.pii_key.get_secret_value() == DEV_PII_KEY:
            problems.append("CALLCENTER_PII_KEY is the development key")
        hash_key = self.phone_hash_key.get_secret_value()
        if hash_key == DEV_HASH_KEY:
            problems.append("CALLCENTER_PHONE_HASH_KEY is the development key")
        elif len(hash_key) < MIN_HASH_KEY_CHARS or len(set(hash_key)) < MIN_HASH_KEY_DISTINCT:
            problems.append(
                f"CALLCENTER_PHONE_HASH_KEY must be at least {MIN_HASH_KEY_CHARS} characters with at least "
                f"{MIN_HASH_KEY_DISTINCT} different ones (it has {len(hash_key)}, "
                f"{len(set(hash_key))} different); generate one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        if self.database_url.startswith("sqlite"):
            problems.append("CALLCENTER_DATABASE_URL points at SQLite; production needs PostgreSQL")
        if problems:
            raise ValueError("unsafe production settings: " + "; ".join(problems))
        return self

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def pii_key_bytes(self) -> bytes:
        return base64.urlsafe_b64decode(self.pii_key.get_secret_value())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment on first use."""
    return Settings()
