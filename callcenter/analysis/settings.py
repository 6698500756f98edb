"""The analysis domain's knobs (environment prefix ``CALLCENTER_ANALYSIS_``): alert delivery, digests.

Read once at start-up with :func:`get_analysis_settings` and passed on; nothing is read at import time.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AnalysisSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLCENTER_ANALYSIS_", env_file=".env", extra="ignore")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "tongdai1022@danang.gov.vn"
    smtp_timeout_seconds: float = 10.0
    webhook_timeout_seconds: float = 5.0
    # Quick retries inside one delivery (tenacity), then database-polled retries with a growing delay.
    quick_retries: int = Field(default=3, ge=1, le=10)
    quick_retry_wait_seconds: float = Field(default=0.5, ge=0)
    max_attempts: int = Field(default=8, ge=1, le=50)
    retry_base_seconds: int = Field(default=60, ge=1)
    retry_max_seconds: int = Field(default=6 * 3600, ge=60)
    lease_seconds: int = Field(default=120, ge=10)
    # Unsatisfied answers older than this are not alerted any more by the periodic scan.
    scan_lookback_hours: int = Field(default=48, ge=1)
    digest_hour_local: int = Field(default=7, ge=0, le=23)
    # An alert whose answer has a recorded comment still being transcribed (comment_status "pending")
    # waits for the transcript and the reasons taken from it: it is looked at again every
    # transcript_wait_poll_seconds, and sent anyway — saying the comment is still being transcribed —
    # once transcript_wait_max_seconds have passed since the alert was raised.
    # The cap outlasts the speech worker's wait for a Twilio recording that is still being processed
    # (callcenter.asr.service.RECORDING_READY_GRACE_SECONDS, 10 minutes) by a couple of sweeps.
    transcript_wait_poll_seconds: int = Field(default=15, ge=1)
    transcript_wait_max_seconds: int = Field(default=720, ge=0)


@lru_cache(maxsize=1)
def get_analysis_settings() -> AnalysisSettings:
    return AnalysisSettings()
