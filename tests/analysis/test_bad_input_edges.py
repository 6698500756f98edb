"""Bad input at the analysis domain's edges: refused by name, with nothing written and no traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.analysis import cli, tasks
from callcenter.analysis.delivery import AlertContext, build_notifiers
from callcenter.analysis.labels import reason_labels
from callcenter.analysis.models import AlertSubscription, StaffPhone
from callcenter.analysis.periods import Period
from callcenter.analysis.settings import AnalysisSettings
from callcenter.core.clock import ManualClock
from callcenter.core.errors import ValidationError
from callcenter.core.models import ApiKey
from callcenter.core.pii import PiiCipher
from callcenter.core.runtime import Runtime
from tests.cli_helpers import WIDE_RUNNER, assert_refused

from .conftest import Builder, cli_runtime, one_agency

NOW = datetime(2026, 4, 2, 3, 0, tzinfo=UTC)


@pytest.fixture
def runtime(tmp_path: Path, cipher: PiiCipher, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """A migrated SQLite file with one agency (XD); the CLI commands run against it."""
    with cli_runtime(tmp_path, cipher, monkeypatch, one_agency) as rt:
        yield rt


def _count(runtime: Runtime, model: type) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


# --- over-long and blank text options --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "needles"),
    [
        ("n" * 300, ("'--name'", "300 characters is too long", "at most 128")),
        ("", ("'--name'", "must not be empty")),
        ("   ", ("'--name'", "must not be empty")),
    ],
)
def test_apikey_issue_refuses_a_name_too_long_or_blank(
    runtime: Runtime, name: str, needles: tuple[str, ...]
) -> None:
    result = WIDE_RUNNER.invoke(cli.app, ["apikey", "issue", "--role", "admin", "--name", name])
    assert_refused(result, *needles)
    assert _count(runtime, ApiKey) == 0


def test_apikey_issue_stores_the_name_stripped_up_to_the_column_length(runtime: Runtime) -> None:
    result = WIDE_RUNNER.invoke(cli.app, ["apikey", "issue", "--role", "admin", "--name", f" {'n' * 128} "])
    assert result.exit_code == 0, result.output
    with runtime.sessions() as session:
        assert session.scalar(select(ApiKey.name)) == "n" * 128


@pytest.mark.parametrize(
    ("option", "value", "needles"),
    [
        ("--webhook", "https://example.com/" + "w" * 3000, ("'--webhook'", "3020 characters", "at most 512")),
        ("--email", "e" * 600 + "@example.com", ("'--email'", "612 characters", "at most 512")),
        ("--email", "  ", ("'--email'", "must not be empty")),
    ],
)
def test_alerts_subscribe_refuses_a_target_the_column_cannot_hold(
    runtime: Runtime, option: str, value: str, needles: tuple[str, ...]
) -> None:
    result = WIDE_RUNNER.invoke(cli.app, ["alerts", "subscribe", "--agency", "XD", option, value])
    assert_refused(result, *needles)
    assert "w" * 100 not in result.output  # the over-long URL is not echoed back
    assert _count(runtime, AlertSubscription) == 0


# --- wording -----------------------------------------------------------------------------------------


def test_staff_phones_import_names_each_bad_row_and_the_field_once(runtime: Runtime, tmp_path: Path) -> None:
    staff = tmp_path / "staff.csv"
    staff.write_text("Số điện thoại\n0905777888\nabc\n12\n", encoding="utf-8")
    result = WIDE_RUNNER.invoke(cli.app, ["staff-phones", "import", str(staff), "--agency", "XD"])
    assert_refused(result, "field 'phone': 2 bad rows, nothing imported: row 3: ", "; row 4: ")
    said = " ".join(result.output.split())
    assert said.count("row 3") == 1 and said.count("field 'phone'") == 1, said
    assert _count(runtime, StaffPhone) == 0


@pytest.mark.parametrize("text", ["2101", "1999", "1899-Q1", "2101-07"])
def test_a_period_outside_the_accepted_years_names_the_accepted_range(text: str) -> None:
    with pytest.raises(ValidationError, match=r"is outside 2000\.\.2100$") as caught:
        Period.parse(text)
    assert caught.value.field == "period"


# --- analysis.raise_alert with an id that names no answer -------------------------------------------


@pytest.fixture
def alert_context(db_session: Session, cipher: PiiCipher, monkeypatch: pytest.MonkeyPatch) -> AlertContext:
    settings = AnalysisSettings(smtp_host="127.0.0.1", smtp_port=1)
    factory = sessionmaker(bind=db_session.connection(), join_transaction_mode="create_savepoint")
    ctx = AlertContext(
        sessions=factory,
        cipher=cipher,
        clock=ManualClock(NOW),
        settings=settings,
        notifiers=build_notifiers(settings),
        labels=reason_labels(),
    )
    monkeypatch.setattr(tasks, "_context", lambda: ctx)
    return ctx


@pytest.mark.parametrize("response_id", [987_654_321, 99999999999999999999, 0, -3, "abc"])
def test_raise_alert_for_an_unknown_answer_logs_a_warning_and_does_nothing(
    alert_context: AlertContext, caplog: pytest.LogCaptureFixture, response_id: object
) -> None:
    with caplog.at_level(logging.WARNING, logger="callcenter.analysis.tasks"):
        result = tasks.raise_alert(response_id)
    assert result == {
        "sent": 0,
        "retry_later": 0,
        "failed": 0,
        "lost_race": 0,
        "waiting_for_transcript": 0,
        "cancelled": 0,
        "errors": [],
    }
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert f"survey response {response_id!r} does not exist" in warnings[0].getMessage()


def test_raise_alert_for_a_real_answer_logs_no_warning(
    alert_context: AlertContext, build: Builder, caplog: pytest.LogCaptureFixture
) -> None:
    agency, fld = build.agency("XD"), build.field("DD")
    dossier = build.dossier(agency, fld, returned_at=datetime(2026, 3, 1, tzinfo=UTC))
    response = build.called_response(
        dossier, agency, fld, at=datetime(2026, 3, 2, 3, tzinfo=UTC), satisfied=True
    )
    with caplog.at_level(logging.WARNING, logger="callcenter.analysis.tasks"):
        result = tasks.raise_alert(response.id)
    assert result["sent"] == 0 and not caplog.records, caplog.text
