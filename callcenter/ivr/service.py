"""Storing survey answers as they come, opt-outs, and the survey outcome the dialer asks for.

Service functions take an explicit session and keyword-only arguments and never commit; the
:class:`DbRecorder` adapter is the boundary that commits, once per saved answer, so a hang-up or a
crash never loses what the citizen already said.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import replace
from datetime import datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from callcenter.core.clock import Clock
from callcenter.core.db import session_scope
from callcenter.core.errors import NotFound
from callcenter.core.models import OptOut
from callcenter.core.outcomes import SurveyOutcome
from callcenter.core.pii import PiiCipher
from callcenter.ivr.flow import CallContext, SurveyResult
from callcenter.ivr.models import ResponseChannel, ResponseReason, ResponseStatus, SurveyResponse

log = logging.getLogger(__name__)

OPT_OUT_SOURCE_IVR = "ivr_key"

# Order in which a response may move; a stale save never moves it back.
_STATUS_RANK = {
    ResponseStatus.IN_PROGRESS: 0,
    ResponseStatus.PARTIAL: 1,
    ResponseStatus.COMPLETED: 2,
    ResponseStatus.OPTED_OUT: 3,
}


def response_status(result: SurveyResult) -> ResponseStatus:
    """The stored status of a flow result."""
    if result.opted_out:
        return ResponseStatus.OPTED_OUT
    if not result.ended:
        return ResponseStatus.IN_PROGRESS
    return ResponseStatus.COMPLETED if result.complete else ResponseStatus.PARTIAL


def record_opt_out(
    session: Session, *, phone_hash: str, source: str, now: datetime, note: str | None = None
) -> bool:
    """Add a phone to the do-not-call registry every campaign honours; False if it was already there."""
    exists = session.execute(select(OptOut.id).where(OptOut.phone_hash == phone_hash)).scalar_one_or_none()
    if exists is not None:
        return False
    try:
        with session.begin_nested():
            session.add(OptOut(phone_hash=phone_hash, source=source, note=note, created_at=now))
    except IntegrityError:  # a concurrent opt-out of the same phone won the race: same end state
        return False
    return True


def save_survey_progress(
    session: Session,
    *,
    attempt_id: int,
    context: CallContext,
    result: SurveyResult,
    now: datetime,
) -> SurveyResponse:
    """Create or update the response of one call attempt from the flow's current result.

    Idempotent and monotonic: saving the same result twice changes nothing, an older result never
    undoes a newer one (reasons are only added, the status only moves forward).
    """
    row = session.execute(
        select(SurveyResponse).where(SurveyResponse.attempt_id == attempt_id)
    ).scalar_one_or_none()
    if row is None:
        row = SurveyResponse(
            channel=ResponseChannel.CALL.value,
            attempt_id=attempt_id,
            dossier_id=context.dossier_id,
            agency_id=context.agency_id,
            field_id=context.field_id,
            phone_hash=context.phone_hash,
            questionnaire_version=result.questionnaire_version,
            status=ResponseStatus.IN_PROGRESS.value,
            comment_status="none",
            started_at=now,
        )
        session.add(row)
    elif row.dossier_id != context.dossier_id:
        raise ValueError(
            f"attempt {attempt_id} already belongs to dossier {row.dossier_id}, not {context.dossier_id}"
        )

    status = response_status(result)
    if _STATUS_RANK[status] >= _STATUS_RANK[ResponseStatus(row.status)]:
        row.status = status.value
    if result.satisfied is not None:
        if row.satisfied is None:
            row.answered_at = now
        row.satisfied = result.satisfied
    if result.answered_via:
        row.answered_via = result.answered_via
    known = {reason.reason_code for reason in row.reasons}
    for code, source in result.reasons.items():
        if code not in known:
            row.reasons.append(ResponseReason(reason_code=code, source=source))
    if result.recording_ref and row.recording_ref is None:
        row.recording_ref = result.recording_ref
        row.comment_status = "pending"  # the transcript comes later, off the call's path
    if result.ended and row.completed_at is None:
        row.completed_at = now
    if result.opted_out and context.phone_hash:
        record_opt_out(session, phone_hash=context.phone_hash, source=OPT_OUT_SOURCE_IVR, now=now)
    session.flush()
    return row


def close_unfinished_response(session: Session, *, attempt_id: int, now: datetime) -> SurveyResponse | None:
    """End a response whose call ended without the flow seeing it (Twilio hang-up mid-question)."""
    row = session.execute(
        select(SurveyResponse).where(SurveyResponse.attempt_id == attempt_id)
    ).scalar_one_or_none()
    if row is None or row.status != ResponseStatus.IN_PROGRESS:
        return row
    complete = row.satisfied is True or (row.satisfied is False and bool(row.reasons))
    row.status = (ResponseStatus.COMPLETED if complete else ResponseStatus.PARTIAL).value
    row.completed_at = now
    session.flush()
    return row


def store_comment_transcript(
    session: Session, *, attempt_id: int, transcript: str | None, cipher: PiiCipher
) -> SurveyResponse:
    """Keep the (encrypted) transcript of a recorded comment; None marks the transcription failed."""
    row = session.execute(
        select(SurveyResponse).where(SurveyResponse.attempt_id == attempt_id)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no survey response for call attempt {attempt_id}")
    if transcript is None:
        row.comment_status = "failed"
    else:
        row.comment_enc = cipher.encrypt_optional(transcript.strip())
        row.comment_status = "done"
    session.flush()
    return row


def survey_outcome_for_attempt(session: Session, *, attempt_id: int) -> SurveyOutcome:
    """What one call attempt yielded for the survey (NONE when the IVR never started)."""
    row = session.execute(
        select(SurveyResponse).where(SurveyResponse.attempt_id == attempt_id)
    ).scalar_one_or_none()
    if row is None:
        return SurveyOutcome.NONE
    if row.status == ResponseStatus.OPTED_OUT:
        return SurveyOutcome.OPTED_OUT
    if row.satisfied is True or (row.satisfied is False and row.reasons):
        return SurveyOutcome.COMPLETED
    if row.satisfied is not None:
        return SurveyOutcome.PARTIAL
    return SurveyOutcome.NO_INPUT


# -------------------------------------------------------------------------------------- adapter

_transient = retry(
    retry=retry_if_exception_type(OperationalError),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.05, max=0.5),
    reraise=True,
)


class DbRecorder:
    """The driver's recorder: each save is one committed transaction, run off the event loop."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        attempt_id: int,
        context: CallContext,
        clock: Clock,
        executor: Executor | None = None,
    ) -> None:
        self._sessions = sessions
        self.attempt_id = attempt_id
        self.context = context
        self._clock = clock
        self._executor = executor

    @_transient
    def save_sync(self, result: SurveyResult) -> None:
        with session_scope(self._sessions) as session:
            save_survey_progress(
                session,
                attempt_id=self.attempt_id,
                context=self.context,
                result=result,
                now=self._clock.now(),
            )

    async def save(self, result: SurveyResult) -> None:
        snapshot = _copy_result(result)  # the flow goes on while the thread writes
        await run_blocking(partial(self.save_sync, snapshot), executor=self._executor)


def _copy_result(result: SurveyResult) -> SurveyResult:
    return replace(result, reasons=dict(result.reasons), via=set(result.via))


async def run_blocking(func: Callable[[], object], *, executor: Executor | None = None) -> object:
    """Run a blocking call (database, file) on a worker thread so the event loop keeps serving calls."""
    return await asyncio.get_running_loop().run_in_executor(executor, func)
