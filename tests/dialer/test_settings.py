"""The dialer's settings refuse what cannot work, and what is unsafe in production."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr, ValidationError

from callcenter.dialer.cli import run_on_event_loop
from callcenter.dialer.settings import AsteriskServer, DialerSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CALLCENTER_ENV", "CALLCENTER_DIALER_ENV", "CALLCENTER_DIALER_TRUNK"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("variable", ["CALLCENTER_ENV", "CALLCENTER_DIALER_ENV"])
def test_production_refuses_the_simulator_whichever_switch_says_production(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "production")
    with pytest.raises(ValidationError, match="simulator trunk places no real calls; refused in production"):
        DialerSettings(_env_file=None)  # type: ignore[call-arg]


def test_production_refuses_plain_http_for_twilio_and_asterisk_without_a_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALLCENTER_ENV", "production")
    with pytest.raises(ValidationError, match="TWILIO_BASE_URL must be https in production"):
        DialerSettings(  # type: ignore[call-arg]
            _env_file=None, trunk="twilio", twilio_account_sid="AC1", twilio_auth_token=SecretStr("t"),
            twilio_from_number="+842363822022", twilio_base_url="http://ivr.example.vn",
        )  # fmt: skip
    with pytest.raises(ValidationError, match="every Asterisk server needs an AMI secret in production"):
        DialerSettings(_env_file=None, trunk="asterisk", asterisk_servers=[AsteriskServer(name="pbx-a")])  # type: ignore[call-arg]


def test_development_and_an_explicit_setting_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DialerSettings(_env_file=None).env == "development"  # type: ignore[call-arg]
    assert DialerSettings(_env_file=None, env="test").env == "test"  # type: ignore[call-arg]
    monkeypatch.setenv("CALLCENTER_ENV", "production")
    monkeypatch.setenv("CALLCENTER_DIALER_ENV", "test")  # the dialer's own switch wins
    assert DialerSettings(_env_file=None).env == "test"  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("kind", "loop_type"), [("uvloop", "uvloop.Loop"), ("asyncio", "asyncio.unix_events")]
)
def test_the_owner_runs_on_the_event_loop_its_setting_names(kind: str, loop_type: str) -> None:
    seen: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen.append(f"{type(loop).__module__}.{type(loop).__name__}")

    run_on_event_loop(kind, main())
    assert len(seen) == 1 and seen[0].startswith(loop_type)
    with pytest.raises(ValueError, match="unknown event loop 'tokio': uvloop or asyncio"):
        run_on_event_loop("tokio", main())


def test_an_unknown_owner_event_loop_setting_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCENTER_DIALER_OWNER_EVENT_LOOP", "tokio")
    with pytest.raises(ValidationError, match="owner_event_loop"):
        DialerSettings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("CALLCENTER_DIALER_OWNER_EVENT_LOOP", "asyncio")
    assert DialerSettings(_env_file=None).owner_event_loop == "asyncio"  # type: ignore[call-arg]
    monkeypatch.delenv("CALLCENTER_DIALER_OWNER_EVENT_LOOP")
    assert DialerSettings(_env_file=None).owner_event_loop == "uvloop"  # type: ignore[call-arg]
