"""Speech settings (prefix ``CALLCENTER_ASR_``), read once at start-up and passed on."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

EngineName = Literal["auto", "vosk", "viet-asr", "none"]


class AsrSettings(BaseSettings):
    """Which speech engine runs, where its model lies, and how sure an answer must be."""

    model_config = SettingsConfigDict(env_prefix="CALLCENTER_ASR_", env_file=".env", extra="ignore")

    # auto: Vosk if vosk_model_path is set, else viet-asr if installed, else none (keys only).
    engine: EngineName = "auto"
    # Directory of an unpacked Vosk model (am/, conf/, graph/), e.g. vosk-model-small-vn-0.4.
    vosk_model_path: Path | None = None
    # viet-asr preset: "transcribe" is plain text; the richer presets add nothing this project uses.
    viet_asr_preset: str = "transcribe"
    # viet-asr reports no confidence of its own; this prior stands in for it (see docs/speech.md).
    viet_asr_confidence: float = Field(default=0.9, gt=0.0, le=1.0)
    # Recognition processes per AGI server (each loads the model once).
    pool_workers: int = Field(default=1, ge=1, le=16)
    # Seconds one utterance may take before the call goes on without it (keys instead).
    timeout_seconds: float = Field(default=10.0, gt=0.0)
    # Where relative recording_ref paths of comment recordings are resolved (Asterisk writes
    # absolute paths; the IVR's CALLCENTER_IVR_RECORDINGS_DIR is accepted too).
    recordings_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("CALLCENTER_ASR_RECORDINGS_DIR", "CALLCENTER_IVR_RECORDINGS_DIR"),
    )
    # Twilio recordings are downloaded with the account's credentials (the dialer's settings).
    twilio_account_sid: str = Field(
        default="",
        validation_alias=AliasChoices(
            "CALLCENTER_ASR_TWILIO_ACCOUNT_SID", "CALLCENTER_DIALER_TWILIO_ACCOUNT_SID"
        ),
    )
    twilio_auth_token: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices(
            "CALLCENTER_ASR_TWILIO_AUTH_TOKEN", "CALLCENTER_DIALER_TWILIO_AUTH_TOKEN"
        ),
    )
    # How many pending comments one sweep transcribes (the sweep runs every minute on the asr queue).
    sweep_batch: int = Field(default=20, ge=1, le=1000)

    @property
    def twilio_auth(self) -> tuple[str, str] | None:
        token = self.twilio_auth_token.get_secret_value()
        return (self.twilio_account_sid, token) if self.twilio_account_sid and token else None
