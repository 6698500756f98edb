"""The attempt state machine and the dialer's service functions on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from callcenter.campaign.models import CallTarget, Campaign
from callcenter.core.outcomes import CallOutcome
from callcenter.core.pii import PiiCipher
from callcenter.dialer import service
from callcenter.dialer.models import AttemptStatus as S
from callcenter.dialer.models import CallAttempt
from callcenter.dialer.state import (
    FINAL_STATUSES,
    TRANSITIONS,
    IllegalTransition,
    check_transition,
    compare_and_set,
)
from callcenter.dialer.testing import seed_dossiers, start_campaign
from callcenter.intake.models import Dossier, Field
from callcenter.ivr.call_token import call_token_key, verify_call_token
from callcenter.ivr.context import load_call_context
from callcenter.ivr.flow import SurveyResult
from callcenter.ivr.service import save_survey_progress
from tests.statements import sent_statements

NOW = datetime.now(UTC)


def test_transition_table() -> None:
    assert {S.FINISHED, S.CANCELLED} == FINAL_STATUSES
    assert S.DIALING not in {s for s in TRANSITIONS[S.DIALING]}  # no self-loops
    check_transition(S.CLAIMED, S.DIALING)
    # Once an originate may have left, an attempt can only finish: never cancelled, never re-queued.
    for live in (S.DIALING, S.RINGING, S.IN_SURVEY):
        with pytest.raises(IllegalTransition):
            check_transition(live, S.CANCELLED)
    with pytest.raises(IllegalTransition, match="from finished to queued"):
        check_transition(S.FINISHED, S.QUEUED)


def _attempts(session: Session, cipher: PiiCipher, n: int) -> list[int]:
    code = seed_dossiers(session, cipher, n)
    start_campaign(session, total=n, agency_codes=[code], now=NOW)
    return service.release_due_attempts(session, now=NOW, limit=n, trunk="simulator")


def test_release_creates_queued_attempts_with_channel_ids(db_session: Session, cipher: PiiCipher) -> None:
    db_session.add(Field(code="unused", name="Một lĩnh vực khác"))  # field ids no longer equal agency ids
    db_session.flush()
    ids = _attempts(db_session, cipher, 3)
    assert len(ids) == 3
    rows = db_session.execute(select(CallAttempt.status, CallAttempt.channel_id)).all()
    assert {r.status for r in rows} == {"queued"} and len({r.channel_id for r in rows}) == 3
    # Each attempt carries its own target, campaign and dossier, and the dossier's agency and field.
    copied = db_session.execute(
        select(
            CallAttempt.id, CallAttempt.trunk, CallAttempt.created_at, CallAttempt.error_count,
            CallAttempt.campaign_id == CallTarget.campaign_id, CallAttempt.dossier_id == Dossier.id,
            CallAttempt.agency_id == Dossier.agency_id, CallAttempt.field_id == Dossier.field_id,
        )
        .join(CallTarget, CallTarget.id == CallAttempt.target_id)
        .join(Dossier, Dossier.id == CallTarget.dossier_id)
    ).all()  # fmt: skip
    assert sorted(r[0] for r in copied) == sorted(ids)
    placements = db_session.execute(select(Dossier.agency_id, Dossier.field_id)).all()
    assert all(agency != field for agency, field in placements)  # so a swap of the two would show
    for _id, trunk, created_at, errors, *same in copied:
        assert (trunk, errors, all(same)) == ("simulator", 0, True)
        assert abs((created_at.replace(tzinfo=created_at.tzinfo or UTC) - NOW).total_seconds()) < 1
    assert service.count_active_attempts(db_session) == 3
    assert service.release_due_attempts(db_session, now=NOW, limit=10, trunk="simulator") == []


def test_compare_and_set_lets_exactly_one_racer_win(db_session: Session, cipher: PiiCipher) -> None:
    (aid,) = _attempts(db_session, cipher, 1)
    lease = NOW + timedelta(minutes=1)
    assert service.claim_attempt(
        db_session, attempt_id=aid, worker="a", server="sim", lease_expires_at=lease, now=NOW
    )
    assert not service.claim_attempt(
        db_session, attempt_id=aid, worker="b", server="sim", lease_expires_at=lease, now=NOW
    )
    assert service.mark_dialing(db_session, attempt_id=aid, now=NOW)
    assert not service.mark_dialing(db_session, attempt_id=aid, now=NOW)
    assert not compare_and_set(
        db_session, attempt_id=aid, expected=S.CLAIMED, new=S.CANCELLED, now=NOW, ended_at=NOW
    )


def test_start_dialing_moves_a_claimed_attempt_once_and_reads_what_the_call_needs(
    db_session: Session, cipher: PiiCipher
) -> None:
    queued, claimed = _attempts(db_session, cipher, 2)
    service.claim_attempt(
        db_session, attempt_id=claimed, worker="a", server="sim", lease_expires_at=NOW, now=NOW
    )
    assert service.start_dialing(db_session, attempt_id=queued, now=NOW) is None  # not claimed yet
    stale = NOW + timedelta(seconds=31)  # claimed more than 30 s ago: left to the reaper
    assert (
        service.start_dialing(
            db_session, attempt_id=claimed, now=stale, claimed_since=NOW + timedelta(seconds=1)
        )
        is None
    )
    later = NOW + timedelta(seconds=3)
    found = service.start_dialing(db_session, attempt_id=claimed, now=later)
    assert found is not None
    attempt, phone_enc = found
    row = db_session.execute(
        select(
            CallAttempt.status, CallAttempt.dialed_at, CallAttempt.dossier_id, CallAttempt.channel_id
        ).where(CallAttempt.id == claimed)
    ).one()
    assert (attempt.id, attempt.status, attempt.server) == (claimed, S.DIALING, "sim")
    assert (row.status, row.dialed_at, attempt.dossier_id, attempt.channel_id) == (
        "dialing",
        later,
        row.dossier_id,
        row.channel_id,
    )
    # The phone is the attempt's own dossier's (the subquery is correlated, not any dossier's).
    read = service.attempt_for_dialing(db_session, attempt_id=claimed)
    assert read is not None and phone_enc == read[1] and phone_enc is not None
    other = service.attempt_for_dialing(db_session, attempt_id=queued)
    assert other is not None and cipher.decrypt(phone_enc) != cipher.decrypt(other[1] or b"")
    assert service.start_dialing(db_session, attempt_id=claimed, now=later) is None  # never twice
    # The request carries the token the IVR checks: valid for this attempt and dossier only.
    key = call_token_key(b"p" * 32)
    request = service.dial_request(attempt=attempt, phone_enc=phone_enc, cipher=cipher, token_key=key)
    assert (request.attempt_id, request.dossier_id) == (claimed, row.dossier_id)
    ids = {"attempt_id": claimed, "dossier_id": row.dossier_id}
    assert verify_call_token(key, **ids, token=request.call_token)
    assert not verify_call_token(call_token_key(b"q" * 32), **ids, token=request.call_token)
    assert not verify_call_token(
        key, attempt_id=claimed, dossier_id=row.dossier_id + 1, token=request.call_token
    )
    assert not verify_call_token(key, attempt_id=queued, dossier_id=row.dossier_id, token=request.call_token)


def test_finish_tells_the_campaign_exactly_once(db_session: Session, cipher: PiiCipher) -> None:
    (aid,) = _attempts(db_session, cipher, 1)
    service.claim_attempt(db_session, attempt_id=aid, worker="a", server="sim", lease_expires_at=NOW, now=NOW)
    service.mark_dialing(db_session, attempt_id=aid, now=NOW)
    assert service.finish_attempt(
        db_session, attempt_id=aid, outcome=CallOutcome.BUSY, now=NOW, hangup_cause=17
    )
    assert not service.finish_attempt(db_session, attempt_id=aid, outcome=CallOutcome.ANSWERED, now=NOW)
    row = db_session.execute(select(CallAttempt).where(CallAttempt.id == aid)).scalar_one()
    db_session.refresh(row)
    assert (row.status, row.outcome, row.hangup_cause, row.survey_outcome) == ("finished", "busy", 17, "none")
    target = db_session.execute(select(CallTarget.attempts, CallTarget.state)).one()
    assert target.attempts == 1


def _dialled(session: Session, attempt_id: int) -> None:
    service.claim_attempt(
        session, attempt_id=attempt_id, worker="a", server="sim", lease_expires_at=NOW, now=NOW
    )
    service.mark_dialing(session, attempt_id=attempt_id, now=NOW)


def test_a_finish_on_postgresql_is_two_statements(pg_session: Session, cipher: PiiCipher) -> None:
    """The read (attempt, target, campaign, survey state), then the attempt's CAS, the target's move,
    the phone's release and the campaign's two checks in one statement; nothing else while another
    target of the campaign is live and the agency's list is closed."""
    first, second, third = _attempts(pg_session, cipher, 3)
    for aid in (first, second, third):
        _dialled(pg_session, aid)
    # The first dead number finds no dossier left to draw in its place: the agency's list closes.
    assert service.finish_attempt(pg_session, attempt_id=first, outcome=CallOutcome.INVALID_NUMBER, now=NOW)
    engine = pg_session.connection().engine
    with sent_statements(engine) as sent:
        assert service.finish_attempt(
            pg_session, attempt_id=second, outcome=CallOutcome.INVALID_NUMBER, now=NOW
        )
    # No replenish read, no "anything still live?" lookup.
    assert [s.verb for s in sent] == ["SELECT", "WITH"]
    with sent_statements(engine) as sent:
        # The campaign's last live target: the campaign is completed by the same finish.
        assert service.finish_attempt(
            pg_session, attempt_id=third, outcome=CallOutcome.INVALID_NUMBER, now=NOW
        )
    assert [s.verb for s in sent][:2] == ["SELECT", "WITH"] and len(sent) > 2
    states = pg_session.scalars(select(CallTarget.state).order_by(CallTarget.id)).all()
    assert states == ["exhausted"] * 3
    assert pg_session.scalar(select(Campaign.status)) == "completed"
    statuses = pg_session.scalars(select(CallAttempt.status)).all()
    assert statuses == ["finished"] * 3


def test_a_call_s_status_changes_are_hot_updates_on_postgresql(
    pg_session: Session, cipher: PiiCipher
) -> None:
    """No index holds a column that changes while a call goes on, so PostgreSQL rewrites no index entry
    for claimed, dialing, ringing and in survey (HOT updates); only the final change touches indexes."""
    ids = _attempts(pg_session, cipher, 3)
    counts = text(
        "SELECT pg_stat_get_xact_tuples_updated(CAST('call_attempts' AS regclass)),"
        " pg_stat_get_xact_tuples_hot_updated(CAST('call_attempts' AS regclass))"
    )
    before = pg_session.execute(counts).one()
    for aid in ids:
        _dialled(pg_session, aid)
        assert service.mark_ringing(pg_session, attempt_id=aid, now=NOW)
        assert service.mark_answered(pg_session, attempt_id=aid, now=NOW)
    updated, hot = (
        after - start for after, start in zip(pg_session.execute(counts).one(), before, strict=True)
    )
    assert (updated, hot) == (12, 12)
    assert service.finish_attempt(pg_session, attempt_id=ids[0], outcome=CallOutcome.ANSWERED, now=NOW)
    updated, hot = (
        after - start for after, start in zip(pg_session.execute(counts).one(), before, strict=True)
    )
    assert (updated, hot) == (13, 12)  # ended_at leaves the partial index, the outcome enters another


def test_only_a_final_change_writes_ended_at_and_only_a_finish_writes_the_outcome(
    db_session: Session, cipher: PiiCipher
) -> None:
    """The active attempts are found by ``ended_at IS NULL`` and the summaries count finished attempts
    by their outcome: a change that would break either is refused before it reaches the database."""
    (aid,) = _attempts(db_session, cipher, 1)
    with pytest.raises(ValueError, match="a change to cancelled must write ended_at"):
        compare_and_set(db_session, attempt_id=aid, expected=S.QUEUED, new=S.CANCELLED, now=NOW)
    with pytest.raises(ValueError, match="a change to claimed must not write ended_at"):
        compare_and_set(db_session, attempt_id=aid, expected=S.QUEUED, new=S.CLAIMED, now=NOW, ended_at=NOW)
    with pytest.raises(ValueError, match="a change to finished must write outcome"):
        compare_and_set(
            db_session, attempt_id=aid, expected=S.IN_SURVEY, new=S.FINISHED, now=NOW, ended_at=NOW
        )
    with pytest.raises(ValueError, match="a change to cancelled must not write outcome"):
        compare_and_set(
            db_session,
            attempt_id=aid,
            expected=S.QUEUED,
            new=S.CANCELLED,
            now=NOW,
            ended_at=NOW,
            outcome="failed",
        )
    assert db_session.scalar(select(CallAttempt.status).where(CallAttempt.id == aid)) == "queued"
    _dialled(db_session, aid)
    assert service.finish_attempt(db_session, attempt_id=aid, outcome=CallOutcome.BUSY, now=NOW)
    row = db_session.execute(select(CallAttempt.status, CallAttempt.outcome, CallAttempt.ended_at)).one()
    assert (row.status, row.outcome, row.ended_at is not None) == ("finished", "busy", True)


def test_a_trunk_message_quoting_the_number_is_stored_masked(db_session: Session, cipher: PiiCipher) -> None:
    (aid,) = _attempts(db_session, cipher, 1)
    service.claim_attempt(db_session, attempt_id=aid, worker="a", server="sim", lease_expires_at=NOW, now=NOW)
    service.mark_dialing(db_session, attempt_id=aid, now=NOW)
    refused = "Twilio refused the call (403, code 21215): Account not authorized to call +84905123456."
    assert service.finish_attempt(
        db_session, attempt_id=aid, outcome=CallOutcome.FAILED, now=NOW, detail=refused
    )
    detail = db_session.scalar(select(CallAttempt.detail).where(CallAttempt.id == aid))
    assert detail == "Twilio refused the call (403, code 21215): Account not authorized to call ********456."


def test_a_lost_call_with_survey_answers_is_dropped_not_failed(
    db_session: Session, cipher: PiiCipher
) -> None:
    (aid,) = _attempts(db_session, cipher, 1)
    service.claim_attempt(db_session, attempt_id=aid, worker="a", server="sim", lease_expires_at=NOW, now=NOW)
    service.mark_dialing(db_session, attempt_id=aid, now=NOW)
    service.mark_answered(db_session, attempt_id=aid, now=NOW)
    dossier_id = db_session.scalar(select(CallAttempt.dossier_id).where(CallAttempt.id == aid))
    assert dossier_id is not None
    context = load_call_context(db_session, dossier_id=dossier_id)
    partial = SurveyResult(questionnaire_version="1", satisfied=False, via={"dtmf"}, revision=1)
    save_survey_progress(db_session, attempt_id=aid, context=context, result=partial, now=NOW)
    assert service.finish_attempt(
        db_session, attempt_id=aid, outcome=CallOutcome.FAILED, now=NOW, detail="lost"
    )
    outcome, survey = db_session.execute(
        select(CallAttempt.outcome, CallAttempt.survey_outcome).where(CallAttempt.id == aid)
    ).one()
    assert (outcome, survey) == ("dropped", "partial")


@pytest.mark.parametrize(
    ("stored", "satisfied", "reasons", "expected"),
    [
        (False, None, {}, "none"),  # answered, but the IVR never stored a response: no row to join
        (True, None, {}, "no_input"),
        (True, True, {}, "completed"),
        (True, False, {}, "partial"),  # dissatisfied without a reason yet
        (True, False, {2: "dtmf"}, "completed"),  # the reason makes it complete
    ],
)
def test_finish_reads_the_survey_outcome_with_the_attempt(
    db_session: Session,
    cipher: PiiCipher,
    stored: bool,
    satisfied: bool | None,
    reasons: dict[int, str],
    expected: str,
) -> None:
    (aid,) = _attempts(db_session, cipher, 1)
    service.claim_attempt(db_session, attempt_id=aid, worker="a", server="sim", lease_expires_at=NOW, now=NOW)
    service.mark_dialing(db_session, attempt_id=aid, now=NOW)
    service.mark_answered(db_session, attempt_id=aid, now=NOW)
    if stored:
        dossier_id = db_session.scalar(select(CallAttempt.dossier_id).where(CallAttempt.id == aid))
        assert dossier_id is not None
        context = load_call_context(db_session, dossier_id=dossier_id)
        result = SurveyResult(
            questionnaire_version="1", satisfied=satisfied, reasons=reasons, via={"dtmf"}, revision=1
        )
        save_survey_progress(db_session, attempt_id=aid, context=context, result=result, now=NOW)
    assert service.finish_attempt(db_session, attempt_id=aid, outcome=CallOutcome.ANSWERED, now=NOW)
    survey = db_session.execute(select(CallAttempt.survey_outcome).where(CallAttempt.id == aid)).scalar_one()
    assert survey == expected


def test_give_back_cancels_without_using_a_retry(db_session: Session, cipher: PiiCipher) -> None:
    (aid,) = _attempts(db_session, cipher, 1)
    attempt = service.get_attempt(db_session, attempt_id=aid)
    assert attempt is not None
    assert service.give_back(
        db_session, attempt=attempt, now=NOW, retry_after=timedelta(seconds=5), detail="x"
    )
    assert not service.give_back(
        db_session, attempt=attempt, now=NOW, retry_after=timedelta(seconds=5), detail="x"
    )
    target = db_session.execute(
        select(CallTarget.state, CallTarget.attempts, CallTarget.next_attempt_at)
    ).one()
    assert (target.state, target.attempts) == ("queued", 0)
    assert target.next_attempt_at >= NOW + timedelta(seconds=5)
