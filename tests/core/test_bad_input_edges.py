"""Bad input at the edges the operator and Twilio reach: the HTTP API, ``callcenter intake file`` and
``callcenter demo``. Each is refused by name (4xx, or exit 2), with nothing written and no traceback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from callcenter.api.app import create_app
from callcenter.api.auth import Role, issue_key
from callcenter.cli.main import app as cli_app
from callcenter.core.clock import ManualClock
from callcenter.core.db import DB_INT_MAX, session_scope, upgrade_database
from callcenter.core.models import AuditLog
from callcenter.core.pii import PiiCipher
from callcenter.core.runtime import Runtime, build_runtime
from callcenter.core.settings import Settings, get_settings
from callcenter.dialer import http as dialer_http
from callcenter.dialer.models import CallAttempt
from callcenter.intake.mapping import load_mapping
from callcenter.intake.models import Dossier, ImportRun
from callcenter.intake.settings import DEFAULT_MAPPING_PATH
from callcenter.intake.synthetic import make_raw_dossiers, write_csv
from callcenter.ivr import twilio_http
from callcenter.ivr.call_token import call_token, call_token_key
from callcenter.ivr.settings import IvrSettings
from callcenter.ivr.tts import PromptLibrary, default_engines
from tests.analysis.conftest import Builder
from tests.cli_helpers import WIDE_RUNNER, assert_refused

NOW = datetime(2026, 4, 2, 3, 0, tzinfo=UTC)
BIG = "99999999999999999999"  # past BIGINT (and SQLite's INTEGER)


# --- HTTP: ids past the database's integer range -----------------------------------------------------


@pytest.fixture
def api(
    db_session: Session, cipher: PiiCipher, settings: Settings, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """The whole application (create_app), its sessions joining the test's rolled-back transaction;
    Twilio's signature checks stubbed (what they guard is tested in tests/dialer and tests/ivr)."""
    connection = db_session.connection()
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    runtime = Runtime(
        settings=settings, engine=connection.engine, sessions=factory, cipher=cipher, clock=ManualClock(NOW)
    )
    app = create_app(runtime)
    ivr = twilio_http.TwilioIvr.from_runtime(
        runtime,
        IvrSettings(
            CALLCENTER_IVR_PUBLIC_BASE_URL="https://ivr.example.vn",
            CALLCENTER_IVR_TWILIO_AUTH_TOKEN=SecretStr("token"),
        ),
    )
    ivr.prompts = PromptLibrary(tmp_path / "prompts", default_engines(gtts_timeout=0.3))
    app.state.ivr_twilio = ivr
    form: dict[str, str] = {}
    app.dependency_overrides[dialer_http.signed_twilio_form] = lambda: form
    app.dependency_overrides[twilio_http.twilio_params] = lambda: form
    keys = {
        role: issue_key(db_session, name=f"test {role}", role=role, now=NOW)[0]
        for role in (Role.OPERATOR, Role.VERIFIER)
    }
    with TestClient(app) as client:
        yield {"app": app, "client": client, "keys": keys, "form": form, "session": db_session}


def _out_of_range(response: Any, *names: str) -> None:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    for name in names:
        assert name in detail, detail
    assert f"out of range: the database stores whole numbers up to {DB_INT_MAX}" in detail, detail


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", f"/campaigns/{BIG}"),
        ("get", f"/campaigns/{BIG}/events"),
        ("post", f"/campaigns/{BIG}/pause"),
        ("post", f"/campaigns/{BIG}/stop"),
    ],
)
def test_campaign_ids_past_the_range_are_refused_by_name(api: dict[str, Any], method: str, path: str) -> None:
    headers = {"X-API-Key": api["keys"][Role.OPERATOR]}
    response = getattr(api["client"], method)(path, headers=headers)
    _out_of_range(response, f"path parameter 'campaign_id' ({BIG})")
    # An id in range that names nothing is still a plain 404.
    assert api["client"].get("/campaigns/123456789", headers=headers).status_code == 404


def test_a_sample_id_past_the_range_is_refused_and_nothing_is_audited(api: dict[str, Any]) -> None:
    response = api["client"].get(
        f"/analysis/reverification/samples/{BIG}/export", headers={"X-API-Key": api["keys"][Role.VERIFIER]}
    )
    _out_of_range(response, f"path parameter 'sample_id' ({BIG})")
    assert api["session"].scalar(select(func.count()).select_from(AuditLog)) == 0


def test_the_twilio_status_callback_refuses_an_attempt_id_past_the_range(api: dict[str, Any]) -> None:
    api["form"].update({"CallStatus": "completed", "CallSid": "CA1"})
    response = api["client"].post(f"/dialer/twilio/status?attempt_id={BIG}")
    _out_of_range(response, f"query parameter 'attempt_id' ({BIG})")


def test_the_twilio_voice_webhook_refuses_a_dossier_id_past_the_range(api: dict[str, Any]) -> None:
    # Correctly signed for these ids (the dialer's call token), so the dossier is looked up.
    token = call_token(call_token_key(Settings(env="test").pii_key_bytes), attempt_id=1, dossier_id=int(BIG))
    response = api["client"].post(f"/ivr/twilio/voice?attempt_id=1&dossier_id={BIG}&token={token}")
    _out_of_range(response, f"query parameter 'dossier_id' ({BIG})")
    assert "attempt_id" not in response.json()["detail"]  # only the parameter at fault is named


def test_the_twilio_status_callback_names_a_bad_sip_response_code(
    api: dict[str, Any], cipher: PiiCipher
) -> None:
    build = Builder(api["session"], cipher)
    agency, fld = build.agency("XD"), build.field("DD")
    dossier = build.dossier(agency, fld, returned_at=datetime(2026, 3, 1, tzinfo=UTC))
    attempt = build.attempt(dossier, at=datetime(2026, 3, 2, 3, tzinfo=UTC), outcome=None, status="dialing")
    api["session"].flush()
    for bad in ("abc", "4O4", "9" * 5000):
        api["form"].update({"CallStatus": "failed", "SipResponseCode": bad})
        response = api["client"].post(f"/dialer/twilio/status?attempt_id={attempt.id}")
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert "form field 'SipResponseCode' must be a three-digit SIP status code" in detail, detail
        assert "invalid literal" not in detail and len(detail) < 200, detail
    api["session"].expire_all()
    row = api["session"].get(CallAttempt, attempt.id)
    assert row is not None and (row.status, row.outcome) == ("dialing", None)  # nothing written
    api["form"].update({"CallStatus": "failed", "SipResponseCode": "404"})
    response = api["client"].post(f"/dialer/twilio/status?attempt_id={attempt.id}")
    assert response.status_code == 200 and response.json() == {"status": "finished"}, response.text


# --- callcenter intake file --source -----------------------------------------------------------------


@pytest.fixture
def intake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A migrated SQLite file the CLI uses, and a good export file of five dossiers."""
    url = f"sqlite:///{tmp_path / 'cc.db'}"
    upgrade_database(url)
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", url)
    get_settings.cache_clear()
    export = tmp_path / "good.csv"
    write_csv(export, make_raw_dossiers(5, seed=3, now=NOW), mapping=load_mapping(DEFAULT_MAPPING_PATH))
    yield {"url": url, "export": export}
    get_settings.cache_clear()


def _rows(url: str, model: type) -> int:
    runtime = build_runtime(Settings(env="test", database_url=url))
    try:
        with session_scope(runtime.sessions) as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        runtime.engine.dispose()


@pytest.mark.parametrize(
    ("source", "needles"),
    [
        ("s" * 100, ("'--source'", "100 characters is too long", "at most 64")),
        ("   ", ("'--source'", "must not be empty")),
    ],
)
def test_intake_file_refuses_a_source_the_columns_cannot_hold(
    intake_cli: dict[str, Any], source: str, needles: tuple[str, ...]
) -> None:
    result = WIDE_RUNNER.invoke(cli_app, ["intake", "file", str(intake_cli["export"]), "--source", source])
    assert_refused(result, *needles)
    assert _rows(intake_cli["url"], ImportRun) == 0 and _rows(intake_cli["url"], Dossier) == 0


def test_intake_file_takes_a_source_as_long_as_the_column(intake_cli: dict[str, Any]) -> None:
    result = WIDE_RUNNER.invoke(cli_app, ["intake", "file", str(intake_cli["export"]), "--source", "s" * 64])
    assert result.exit_code == 0, result.output
    assert _rows(intake_cli["url"], Dossier) == 5


def test_intake_quarantine_refuses_a_run_id_past_the_range(intake_cli: dict[str, Any]) -> None:
    result = WIDE_RUNNER.invoke(cli_app, ["intake", "quarantine", "--run", BIG])
    assert_refused(result, "'--run'", f"less than or equal to {DB_INT_MAX}")
    listing = WIDE_RUNNER.invoke(cli_app, ["intake", "quarantine", "--run", str(DB_INT_MAX)])
    assert listing.exit_code == 0 and "(0 shown)" in listing.output, listing.output


# --- callcenter demo: bounds checked before the database is deleted ----------------------------------


@pytest.mark.parametrize(
    ("options", "needles"),
    [
        (["--time-factor", "0"], ("'--time-factor'", "greater than 0")),
        (["--time-factor", "-2"], ("'--time-factor'", "greater than 0")),
        (["--cps", "0"], ("'--cps'", "greater than 0")),
        (["--dossiers", "-5"], ("'--dossiers'", "greater than or equal to 1")),
        (["--dossiers", "0"], ("'--dossiers'", "greater than or equal to 1")),
        (["--agencies", "0"], ("'--agencies'", "greater than or equal to 1")),
        (["--channels", "0"], ("'--channels'", "greater than or equal to 1")),
    ],
)
def test_demo_refuses_bad_bounds_before_touching_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str], needles: tuple[str, ...]
) -> None:
    database = tmp_path / "demo.db"
    database.write_bytes(b"an operator's database, not to be deleted")
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("CALLCENTER_REDIS_URL", "redis://127.0.0.1:6379/13")
    get_settings.cache_clear()
    try:
        result = WIDE_RUNNER.invoke(cli_app, ["demo", "--out", str(tmp_path / "reports"), *options])
    finally:
        get_settings.cache_clear()
    assert_refused(result, *needles)
    assert database.read_bytes() == b"an operator's database, not to be deleted"
    assert not (tmp_path / "reports").exists()


def test_the_app_lets_other_database_errors_through(api: dict[str, Any]) -> None:
    """Only an out-of-range number is answered 422; any other database error stays a 500."""
    app: FastAPI = api["app"]

    @app.get("/boom")
    def boom() -> None:
        raise DataError("SELECT 1", {}, ValueError("invalid input syntax"))

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500
