"""Intake settings (prefix ``CALLCENTER_INTAKE_``): the one-stop API, the field mapping, batching."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MAPPING_PATH = Path(__file__).resolve().parent / "mapping.default.yaml"


class IntakeSettings(BaseSettings):
    """Where dossiers come from and how they are read. Built at start-up, never at import time."""

    model_config = SettingsConfigDict(env_prefix="CALLCENTER_INTAKE_", env_file=".env", extra="ignore")

    # The province's one-stop system (Hệ thống một cửa điện tử) REST API.
    api_base_url: str = "http://127.0.0.1:8765"
    api_token: SecretStr = SecretStr("")
    page_size: int = Field(default=500, ge=1, le=5000)
    timeout_seconds: float = Field(default=30.0, gt=0)
    # Attempts per HTTP request on timeouts, connection errors, 5xx and 429 (tenacity).
    max_attempts: int = Field(default=5, ge=1, le=20)
    # The longest 429 Retry-After we are willing to sleep for inside one request.
    max_retry_after_seconds: float = Field(default=120.0, ge=0)
    mapping_path: Path = DEFAULT_MAPPING_PATH
    # Name of the source system; (source, dossier code) is unique.
    source: str = Field(default="onestop", min_length=1, max_length=64)
    # Each sync asks again for this much time before the watermark (see importer.sync_api).
    sync_overlap_seconds: int = Field(default=300, ge=0)
    # How often Celery beat runs intake.sync_api.
    sync_interval_seconds: int = Field(default=900, ge=30)
    # Rows per database round trip.
    batch_size: int = Field(default=5000, ge=1, le=100_000)
