"""IVR settings (prefix ``CALLCENTER_IVR_``), read once at start-up and passed on."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callcenter.ivr import constants as c


class IvrSettings(BaseSettings):
    """Where the AGI server listens, where prompts and recordings live, how Twilio reaches us."""

    model_config = SettingsConfigDict(env_prefix="CALLCENTER_IVR_", env_file=".env", extra="ignore")

    env: Literal["development", "test", "production"] = Field(
        default="development", validation_alias=AliasChoices("CALLCENTER_IVR_ENV", "CALLCENTER_ENV")
    )
    questionnaire: Path | None = None  # default: prompts/questionnaire.vi.yaml
    agi_host: str = c.AGI_DEFAULT_HOST
    agi_port: int = Field(default=c.AGI_DEFAULT_PORT, ge=1, le=65535)
    # Directory Asterisk writes RECORD FILE audio to (the AGI server must read it for speech).
    # Default: <var_dir>/recordings. Asterisk and this server must see the same path.
    recordings_dir: Path | None = None
    # Database writes run on this many threads per AGI server (answers are stored as they come).
    db_threads: int = Field(default=8, ge=1, le=64)
    # Seconds to wait for the agi_* environment of a new connection before dropping it.
    env_timeout_seconds: float = Field(default=5.0, gt=0)
    # Seconds a survey may go on after SIGTERM before the server stops.
    drain_seconds: float = Field(default=90.0, ge=0)
    gtts_timeout_seconds: float = Field(default=3.0, gt=0)
    # Queue the alert (unsatisfied answer) and the comment's transcription the moment a survey ends
    # (Celery broker CALLCENTER_BROKER_URL). Off: the periodic sweeps pick them up instead.
    queue_followups: bool = True
    # Twilio webhooks: the public base URL Twilio calls (signatures cover the full URL) and the
    # account's auth token (shared with the dialer's CALLCENTER_DIALER_TWILIO_AUTH_TOKEN).
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        validation_alias=AliasChoices("CALLCENTER_IVR_PUBLIC_BASE_URL", "CALLCENTER_DIALER_TWILIO_BASE_URL"),
    )
    twilio_auth_token: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices(
            "CALLCENTER_IVR_TWILIO_AUTH_TOKEN", "CALLCENTER_DIALER_TWILIO_AUTH_TOKEN"
        ),
    )

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> IvrSettings:
        if self.env == "production" and not self.public_base_url.startswith("https://"):
            raise ValueError(
                "CALLCENTER_IVR_PUBLIC_BASE_URL must be https:// in production (Twilio webhooks)"
            )
        return self
