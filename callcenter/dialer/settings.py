"""The dialer's knobs (environment prefix ``CALLCENTER_DIALER_``), refusing unsafe production values.

Read once at start-up (:func:`get_dialer_settings`) and passed on; nothing here runs at import time.
Lists such as the Asterisk pool are JSON in the environment, e.g.::

    CALLCENTER_DIALER_ASTERISK_SERVERS='[{"name": "pbx1", "host": "10.0.0.5", "username": "dialer",
        "secret": "…", "max_channels": 120}, {"name": "pbx2", …}]'
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callcenter.ivr.constants import CONTEXT_SURVEY, EXTEN_SURVEY

TrunkKind = Literal["simulator", "asterisk", "twilio"]


class AsteriskServer(BaseModel):
    """One Asterisk box of the pool, with its own channel limit."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "dialer"
    secret: SecretStr = SecretStr("")
    max_channels: int = Field(default=30, ge=1)
    # Dial string for the citizen's number, e.g. "PJSIP/{number}@viettel" (number in national form).
    dial_template: str = "PJSIP/{number}@trunk"


class SimulatorProfile(BaseModel):
    """How the simulated network behaves: outcome rates and durations (in simulated seconds)."""

    answer_rate: float = Field(default=0.55, ge=0, le=1)
    busy_rate: float = Field(default=0.1, ge=0, le=1)
    no_answer_rate: float = Field(default=0.2, ge=0, le=1)
    failure_rate: float = Field(default=0.05, ge=0, le=1)
    voicemail_rate: float = Field(default=0.1, ge=0, le=1)
    ring_seconds: tuple[float, float] = (4.0, 20.0)  # answered or busy after a ring in this range
    no_answer_ring_seconds: float = 30.0  # rings out after this long
    citizen_think_seconds: tuple[float, float] = (1.0, 4.0)  # before pressing a key
    voicemail_seconds: float = 20.0
    # Scripted citizens who answer: shares of each behaviour (normalised).
    behaviour_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "satisfied": 0.55,
            "unsatisfied": 0.2,
            "unsatisfied_with_comment": 0.05,
            "silent": 0.08,
            "hang_up_early": 0.08,
            "opt_out": 0.02,
            "speaks": 0.02,
        }
    )

    @model_validator(mode="after")
    def _rates_add_up(self) -> SimulatorProfile:
        total = (
            self.answer_rate + self.busy_rate + self.no_answer_rate + self.failure_rate + self.voicemail_rate
        )
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"simulator outcome rates must add up to 1 (they add up to {total:.3f})")
        return self


class DialerSettings(BaseSettings):
    """Which trunk to use, how much of it, and how the queue behaves."""

    model_config = SettingsConfigDict(
        env_prefix="CALLCENTER_DIALER_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # The project-wide CALLCENTER_ENV switches the dialer's production checks on too, as the IVR's.
    env: Literal["development", "test", "production"] = Field(
        default="development", validation_alias=AliasChoices("CALLCENTER_DIALER_ENV", "CALLCENTER_ENV")
    )
    trunk: TrunkKind = "simulator"
    redis_prefix: str = "cc:dialer:"

    # Capacity, enforced across every process through Redis.
    max_channels: int = Field(default=30, ge=1)  # global concurrent calls
    max_cps: float = Field(default=5.0, gt=0)  # global calls per second
    lease_seconds: float = Field(default=60.0, gt=1)  # a dead holder's channel comes back after this
    cps_margin_ms: float = Field(default=50.0, ge=0)  # widens the window: send jitter never breaks the cap

    # Releasing and reaping.
    release_interval_seconds: float = Field(default=1.0, gt=0)
    # The trunk owner asks for a release (dialer.release_due) when calls end, at most this often, so
    # a freed channel is refilled at once rather than at the next beat tick (0 = beat only). Each
    # release has a fixed cost (~10 ms of worker CPU): 0.5 s against 0.25 s saved ~1.5 ms per call
    # for ~1 point of occupancy on the 3,000-call benchmark.
    release_kick_seconds: float = Field(default=0.5, ge=0)
    release_batch: int = Field(default=200, ge=1)
    # Release no more than this many seconds' worth of calls at the CPS cap per run.
    release_lookahead_seconds: float = Field(default=2.0, gt=0)
    throttle_retry_seconds: float = Field(default=5.0, ge=0)
    queued_timeout_seconds: float = Field(default=30.0, gt=0)  # task lost → sent again
    # A QUEUED attempt older than this is not dialled but given back (no retry used): its window,
    # campaign status and opt-out checks are too old (workers down for hours must not call at night).
    queued_max_age_seconds: float = Field(default=120.0, gt=0)
    claimed_timeout_seconds: float = Field(default=30.0, gt=0)  # never handed over → cancelled
    dialing_timeout_seconds: float = Field(default=90.0, gt=0)  # no answer/ring news → ask the trunk
    call_timeout_seconds: float = Field(default=900.0, gt=0)  # no call lasts longer
    reap_interval_seconds: float = Field(default=10.0, gt=0)

    # Asterisk (AMI) pool.
    asterisk_servers: list[AsteriskServer] = Field(default_factory=list)
    asterisk_context: str = CONTEXT_SURVEY
    asterisk_exten: str = EXTEN_SURVEY
    asterisk_caller_id: str = '"1022" <1022>'
    originate_timeout_ms: int = Field(default=30000, ge=1000)
    ami_reconnect_max_seconds: float = Field(default=30.0, gt=0)
    owner_parallel_dials: int = Field(default=16, ge=1, le=256)  # originates in preparation at once
    # The owner's database steps wait this long to share a transaction (see callcenter.dialer.batching).
    owner_batch_linger_ms: float = Field(default=50, ge=0, le=1000)
    # The owner's event loop: uvloop's (less CPU per call for a busy owner) or the standard library's.
    owner_event_loop: Literal["uvloop", "asyncio"] = "uvloop"

    # Twilio.
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr = SecretStr("")
    twilio_from_number: str = ""
    twilio_base_url: str = "http://127.0.0.1:8000"  # public URL of this service (webhooks)
    twilio_max_channels: int = Field(default=30, ge=1)
    twilio_cps: float = Field(default=1.0, gt=0)  # Twilio's default: 1 call per second per account
    twilio_machine_detection: bool = False

    # Simulator.
    simulator_time_factor: float = Field(default=1.0, gt=0)  # 10 = ten simulated seconds per second
    simulator_max_channels: int = Field(default=30, ge=1)
    simulator_profile: SimulatorProfile = Field(default_factory=SimulatorProfile)
    simulator_seed: int = 1022
    simulator_call_log: Path | None = None  # JSON lines, one per call placed (tests, benchmark)

    # Operators.
    metrics_port: int = Field(default=9108, ge=0)  # 0 = no metrics endpoint

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> DialerSettings:
        problems: list[str] = []
        if self.trunk == "asterisk" and not self.asterisk_servers:
            problems.append("CALLCENTER_DIALER_ASTERISK_SERVERS is empty but the trunk is asterisk")
        names = [s.name for s in self.asterisk_servers]
        if len(set(names)) != len(names):
            problems.append("CALLCENTER_DIALER_ASTERISK_SERVERS has duplicate server names")
        if self.trunk == "twilio" and not (
            self.twilio_account_sid and self.twilio_auth_token.get_secret_value() and self.twilio_from_number
        ):
            problems.append("the twilio trunk needs ACCOUNT_SID, AUTH_TOKEN and FROM_NUMBER")
        if self.env == "production":
            if self.trunk == "simulator":
                problems.append("the simulator trunk places no real calls; refused in production")
            if self.trunk == "twilio" and not self.twilio_base_url.startswith("https://"):
                problems.append("CALLCENTER_DIALER_TWILIO_BASE_URL must be https in production")
            if any(not s.secret.get_secret_value() for s in self.asterisk_servers):
                problems.append("every Asterisk server needs an AMI secret in production")
        if problems:
            raise ValueError("dialer settings: " + "; ".join(problems))
        return self


@lru_cache(maxsize=1)
def get_dialer_settings() -> DialerSettings:
    """The process-wide dialer settings, read once from the environment on first use."""
    return DialerSettings()
