"""An import that corrects a dossier carries the correction to its calls and answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from callcenter.analysis.dossier_copies import refresh_dossier_copies
from callcenter.cli.main import app as cli_app
from callcenter.core.clock import VN_TZ
from callcenter.core.db import make_engine, make_session_factory, session_scope, upgrade_database
from callcenter.core.pii import PiiCipher
from callcenter.core.settings import get_settings
from callcenter.dialer.models import CallAttempt
from callcenter.intake.mapping import load_mapping
from callcenter.intake.models import Agency, Dossier, Field
from callcenter.intake.settings import DEFAULT_MAPPING_PATH
from callcenter.intake.synthetic import make_raw_dossiers, write_csv
from callcenter.ivr.models import SurveyResponse
from tests.analysis.conftest import Builder


def test_refresh_rewrites_the_copies_of_changed_dossiers_only(build: Builder) -> None:
    session = build.session
    a, b = build.agency("UBND-Q1"), build.agency("UBND-Q2")
    f, g = build.field("DD"), build.field("TP")
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    moved = build.dossier(a, f, returned_at=at - timedelta(days=1), timeliness="on_time")
    still = build.dossier(a, f, returned_at=at - timedelta(days=1), timeliness="on_time")
    moved_answer = build.called_response(moved, a, f, at=at, satisfied=False)
    still_answer = build.called_response(still, a, f, at=at, satisfied=True)
    # A later import moves one dossier to another agency and field and finds it was returned late.
    import_now = datetime(2026, 4, 1, 8, tzinfo=UTC)
    moved.agency_id, moved.field_id, moved.timeliness, moved.updated_at = b.id, g.id, "late", import_now
    # The other dossier was not touched by that import: its copies stay as they are, even odd ones.
    still_answer.dossier_timeliness = "pending"
    session.flush()

    done = refresh_dossier_copies(session, changed_since=import_now)

    assert (done.attempts, done.answers) == (1, 1)
    session.expire_all()
    attempt = session.scalars(select(CallAttempt).where(CallAttempt.dossier_id == moved.id)).one()
    assert (attempt.agency_id, attempt.field_id) == (b.id, g.id)
    answer = session.get(SurveyResponse, moved_answer.id)
    assert answer is not None
    assert (answer.agency_id, answer.field_id, answer.dossier_timeliness) == (b.id, g.id, "late")
    untouched = session.get(SurveyResponse, still_answer.id)
    assert untouched is not None
    assert (untouched.agency_id, untouched.dossier_timeliness) == (a.id, "pending")
    # Run again: nothing left to change.
    assert refresh_dossier_copies(session, changed_since=import_now) == type(done)(0, 0)


def test_a_corrected_re_import_through_the_cli_moves_past_calls_and_answers(
    tmp_path: Path, cipher: PiiCipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade_database(url)
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", url)
    get_settings.cache_clear()
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    try:
        mapping = load_mapping(DEFAULT_MAPPING_PATH)
        now = datetime.now(UTC)
        raws = list(make_raw_dossiers(40, seed=22, now=now, agencies=4))
        path = tmp_path / "ho_so.csv"
        write_csv(path, raws, mapping=mapping, delimiter=";", bom=True)
        runner = CliRunner()
        first = runner.invoke(cli_app, ["intake", "file", str(path), "--source", "file:copies"])
        assert first.exit_code == 0, first.output

        with session_scope(sessions) as session:
            # A dossier returned on time, on a later day than it was received, and surveyed.
            dossier = next(
                d
                for d in session.scalars(select(Dossier).order_by(Dossier.id))
                if d.timeliness == "on_time"
                and d.returned_at is not None
                and d.returned_at.astimezone(VN_TZ).date() > d.received_at.astimezone(VN_TZ).date()
            )
            other = session.scalars(select(Agency).where(Agency.id != dossier.agency_id)).first()
            assert other is not None
            fld = session.get(Field, dossier.field_id)
            agency = session.get(Agency, dossier.agency_id)
            assert fld is not None and agency is not None
            builder = Builder(session, cipher)
            answer = builder.called_response(dossier, agency, fld, at=now, satisfied=True)
            dossier_id, answer_id, other_id = dossier.id, answer.id, other.id
            code, received_day = dossier.code, dossier.received_at.astimezone(VN_TZ)

        # The agency re-exports with that dossier under another agency and its real (earlier) due date.
        row = next(r for r in raws if r["code"] == code)
        row["agency_code"], row["agency_name"] = other.code, other.name
        row["due_at"] = f"{received_day:%d/%m/%Y}"
        write_csv(path, raws, mapping=mapping, delimiter=";", bom=True)
        second = runner.invoke(cli_app, ["intake", "file", str(path), "--source", "file:copies"])
        assert second.exit_code == 0, second.output

        with session_scope(sessions) as session:
            stored = session.get(Dossier, dossier_id)
            attempt = session.scalars(select(CallAttempt).where(CallAttempt.dossier_id == dossier_id)).one()
            answer = session.get(SurveyResponse, answer_id)
            assert stored is not None and answer is not None
            assert (stored.agency_id, stored.timeliness) == (other_id, "late")
            assert attempt.agency_id == other_id
            assert (answer.agency_id, answer.dossier_timeliness) == (other_id, "late")
    finally:
        engine.dispose()
        get_settings.cache_clear()
