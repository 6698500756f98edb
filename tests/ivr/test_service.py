"""Answers stored as they come, opt-outs, outcomes, and the call context, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from callcenter.core.clock import ManualClock
from callcenter.core.errors import NotFound
from callcenter.core.models import OptOut
from callcenter.core.outcomes import SurveyOutcome
from callcenter.core.pii import PiiCipher
from callcenter.intake.models import Dossier
from callcenter.ivr.context import load_call_context
from callcenter.ivr.flow import HangUp, Keys, RecordingDone, SurveyFlow, Timeout
from callcenter.ivr.models import SurveyResponse
from callcenter.ivr.questionnaire import load_questionnaire
from callcenter.ivr.service import (
    DbRecorder,
    close_unfinished_response,
    get_response,
    save_survey_progress,
    store_comment_transcript,
    survey_outcome_for_attempt,
)
from tests.statements import sent_statements

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
T = TypeVar("T")


def test_load_call_context(db_session: Session, dossier_factory: Callable[..., Dossier]) -> None:
    dossier = dossier_factory(returned_at=datetime(2025, 10, 20, 18, 30, tzinfo=UTC))
    ctx = load_call_context(db_session, dossier_id=dossier.id)
    assert ctx.agency_name == "Sở Tư pháp thành phố Đà Nẵng" and ctx.field_name == "Hộ tịch"
    assert ctx.returned_on == date(2025, 10, 21)  # 01:30 on the 21st in Vietnam
    assert ctx.phone_hash == dossier.phone_hash and ctx.agency_id == dossier.agency_id
    assert ctx.timeliness == dossier.timeliness
    with pytest.raises(NotFound, match="dossier 987654"):
        load_call_context(db_session, dossier_id=987654)


def test_each_answer_is_stored_as_it_comes(
    db_session: Session, dossier_factory: Callable[..., Dossier]
) -> None:
    dossier = dossier_factory()
    ctx = load_call_context(db_session, dossier_id=dossier.id)
    flow = SurveyFlow(load_questionnaire(), ctx)
    flow.start()

    def save(minutes: int) -> SurveyResponse:
        save_survey_progress(
            db_session, attempt_id=5001, context=ctx, result=flow.result, now=NOW + timedelta(minutes=minutes)
        )
        row = get_response(db_session, attempt_id=5001)
        assert row is not None
        return row

    row = save(0)
    assert (row.status, row.satisfied, row.agency_id, row.field_id) == (
        "in_progress",
        None,
        ctx.agency_id,
        ctx.field_id,
    )
    assert row.phone_hash == dossier.phone_hash and row.channel == "call"
    # The dossier's timeliness is copied for the summaries' strata (issue 7).
    assert dossier.timeliness is not None and row.dossier_timeliness == dossier.timeliness
    flow.handle(Keys("2"))
    row = save(1)
    assert row.satisfied is False and row.answered_at == NOW + timedelta(minutes=1)
    assert survey_outcome_for_attempt(db_session, attempt_id=5001) is SurveyOutcome.PARTIAL
    flow.handle(Keys("49"))
    row = save(2)
    assert sorted(r.reason_code for r in row.reasons) == [4, 9]
    flow.handle(RecordingDone("rec/5001.wav", 5.0, "dtmf"))
    row = save(3)
    assert (
        row.status == "completed" and row.recording_ref == "rec/5001.wav" and row.comment_status == "pending"
    )
    assert row.completed_at == NOW + timedelta(minutes=3) and row.answered_at == NOW + timedelta(minutes=1)
    assert survey_outcome_for_attempt(db_session, attempt_id=5001) is SurveyOutcome.COMPLETED
    # Saving the same result again changes nothing; one row per attempt.
    save(4)
    rows = db_session.execute(select(SurveyResponse).where(SurveyResponse.attempt_id == 5001)).scalars().all()
    assert len(rows) == 1 and rows[0].completed_at == NOW + timedelta(minutes=3)


def test_a_stale_save_never_undoes_a_newer_one(
    db_session: Session, dossier_factory: Callable[..., Dossier]
) -> None:
    ctx = load_call_context(db_session, dossier_id=dossier_factory().id)
    flow = SurveyFlow(load_questionnaire(), ctx)
    flow.start()
    flow.handle(Keys("2"))
    early = replace(flow.result, reasons=dict(flow.result.reasons), via=set(flow.result.via))
    flow.handle(Keys("3"))
    flow.handle(Timeout())
    save_survey_progress(db_session, attempt_id=5002, context=ctx, result=flow.result, now=NOW)
    save_survey_progress(db_session, attempt_id=5002, context=ctx, result=early, now=NOW)
    row = get_response(db_session, attempt_id=5002)
    assert row is not None and row.status == "completed" and [r.reason_code for r in row.reasons] == [3]


def test_an_attempt_cannot_switch_dossier(
    db_session: Session, dossier_factory: Callable[..., Dossier]
) -> None:
    one = load_call_context(db_session, dossier_id=dossier_factory().id)
    two = load_call_context(db_session, dossier_id=dossier_factory().id)
    result = SurveyFlow(load_questionnaire(), one).result
    save_survey_progress(db_session, attempt_id=5003, context=one, result=result, now=NOW)
    with pytest.raises(ValueError, match="attempt 5003 already belongs to dossier"):
        save_survey_progress(db_session, attempt_id=5003, context=two, result=result, now=NOW)


def test_hang_up_keeps_a_partial_response(
    db_session: Session, dossier_factory: Callable[..., Dossier]
) -> None:
    ctx = load_call_context(db_session, dossier_id=dossier_factory().id)
    flow = SurveyFlow(load_questionnaire(), ctx)
    flow.start()
    flow.handle(HangUp())
    save_survey_progress(db_session, attempt_id=5004, context=ctx, result=flow.result, now=NOW)
    row = get_response(db_session, attempt_id=5004)
    assert row is not None and row.status == "partial" and row.satisfied is None and row.completed_at == NOW
    assert survey_outcome_for_attempt(db_session, attempt_id=5004) is SurveyOutcome.NO_INPUT


def test_closing_an_unfinished_response_decides_on_the_row_as_stored(
    db_session: Session, dossier_factory: Callable[..., Dossier]
) -> None:
    # Twilio's "completed" callback races the last /step: the citizen pressed 1 and hung up at once.
    ctx = load_call_context(db_session, dossier_id=dossier_factory().id)
    flow = SurveyFlow(load_questionnaire(), ctx)
    flow.start()
    save_survey_progress(db_session, attempt_id=5010, context=ctx, result=flow.result, now=NOW)
    stale = get_response(db_session, attempt_id=5010)
    assert stale is not None and stale.status == "in_progress" and stale.satisfied is None
    # The step's answer lands behind the callback's back (its own transaction, committed first).
    table = SurveyResponse.__table__
    db_session.connection().execute(update(table).where(table.c.attempt_id == 5010).values(satisfied=True))
    row = close_unfinished_response(db_session, attempt_id=5010, now=NOW)
    assert row is not None and (row.status, row.satisfied, row.completed_at) == ("completed", True, NOW)
    assert survey_outcome_for_attempt(db_session, attempt_id=5010) is SurveyOutcome.COMPLETED


def test_opt_out_is_written_once_to_the_registry(
    db_session: Session, dossier_factory: Callable[..., Dossier]
) -> None:
    dossier = dossier_factory(phone="+84935000111")
    ctx = load_call_context(db_session, dossier_id=dossier.id)
    for attempt in (5005, 5006):  # opted out twice (two dossiers' calls): one registry entry
        flow = SurveyFlow(load_questionnaire(), ctx)
        flow.start()
        flow.handle(Keys("0"))
        flow.handle(Keys("1"))
        save_survey_progress(db_session, attempt_id=attempt, context=ctx, result=flow.result, now=NOW)
        row = get_response(db_session, attempt_id=attempt)
        assert row is not None and row.status == "opted_out"
        assert survey_outcome_for_attempt(db_session, attempt_id=attempt) is SurveyOutcome.OPTED_OUT
    entries = (
        db_session.execute(select(OptOut).where(OptOut.phone_hash == dossier.phone_hash)).scalars().all()
    )
    assert [(e.source, e.created_at) for e in entries] == [("ivr_key", NOW)]


def test_unknown_attempt_has_no_survey(db_session: Session) -> None:
    assert survey_outcome_for_attempt(db_session, attempt_id=424242) is SurveyOutcome.NONE


def test_comment_transcript_is_encrypted(
    db_session: Session, dossier_factory: Callable[..., Dossier], cipher: PiiCipher
) -> None:
    ctx = load_call_context(db_session, dossier_id=dossier_factory().id)
    flow = SurveyFlow(load_questionnaire(), ctx)
    flow.start()
    save_survey_progress(db_session, attempt_id=5007, context=ctx, result=flow.result, now=NOW)
    row = store_comment_transcript(
        db_session, attempt_id=5007, transcript=" cán bộ gọi 0905123456 ", cipher=cipher
    )
    assert row.comment_enc is not None and b"0905123456" not in row.comment_enc
    assert cipher.decrypt(row.comment_enc) == "cán bộ gọi 0905123456" and row.comment_status == "done"
    assert (
        store_comment_transcript(db_session, attempt_id=5007, transcript=None, cipher=cipher).comment_status
        == "failed"
    )
    with pytest.raises(NotFound, match="attempt 1"):
        store_comment_transcript(db_session, attempt_id=1, transcript="x", cipher=cipher)


def test_recorder_can_store_through_the_callers_shared_transactions(
    db_session: Session, dossier_factory: Callable[..., Dossier]
) -> None:
    """The trunk owner runs the recorder's writes as steps of its shared transactions."""
    dossier = dossier_factory()
    ctx = load_call_context(db_session, dossier_id=dossier.id)
    steps: list[object] = []

    async def shared(step: Callable[[Session], T]) -> T:
        steps.append(step)
        return step(db_session)

    flow = SurveyFlow(load_questionnaire(), ctx)
    recorder = DbRecorder(
        sessionmaker(), attempt_id=5101, context=ctx, clock=ManualClock(NOW), shared=shared
    )  # the session factory is never used when steps are shared

    async def answer() -> None:
        flow.start()
        await recorder.save(flow.result)
        await recorder.flush()
        flow.handle(Keys("2"))
        await recorder.save(flow.result)
        flow.handle(Keys("49"))
        await recorder.save(flow.result)
        await recorder.flush()

    asyncio.run(answer())
    assert 2 <= len(steps) == recorder.writes <= 3 and recorder.response_id is not None
    row = get_response(db_session, attempt_id=5101)
    assert row is not None and row.satisfied is False
    assert sorted(r.reason_code for r in row.reasons) == [4, 9]
    assert survey_outcome_for_attempt(db_session, attempt_id=5101) is SurveyOutcome.COMPLETED


def test_a_first_save_inserts_without_reading_and_falls_back_when_the_row_exists(
    db_session: Session, dossier_factory: Callable[..., Dossier]
) -> None:
    """``first_save`` skips the read; a row that exists after all (a retried write) is updated, once."""
    ctx = load_call_context(db_session, dossier_id=dossier_factory().id)
    flow = SurveyFlow(load_questionnaire(), ctx)
    flow.start()
    engine = db_session.connection().engine
    with sent_statements(engine) as sent:
        first = save_survey_progress(
            db_session, attempt_id=5010, context=ctx, result=flow.result, now=NOW, first_save=True
        )
    assert [s.verb for s in sent] == ["INSERT"] and first.status == "in_progress"
    flow.handle(Keys("1"))
    again = save_survey_progress(
        db_session, attempt_id=5010, context=ctx, result=flow.result, now=NOW, first_save=True
    )
    assert again.id == first.id and again.satisfied is True
    rows = db_session.execute(select(SurveyResponse).where(SurveyResponse.attempt_id == 5010)).scalars().all()
    assert len(rows) == 1 and rows[0].satisfied is True and rows[0].answered_at == NOW
