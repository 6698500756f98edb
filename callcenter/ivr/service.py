"""Storing survey answers as they come, opt-outs, and the survey outcome the dialer asks for.

Service functions take an explicit session and keyword-only arguments and never commit; the
:class:`DbRecorder` adapter is the boundary that commits, once per saved answer, so a hang-up or a
crash never loses what the citizen already said.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache, partial
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Insert,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    case,
    exists,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from callcenter.core import driver
from callcenter.core.clock import Clock
from callcenter.core.db import dialect_insert, session_scope
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


_RESPONSES = cast(Table, SurveyResponse.__table__)
_REASONS = cast(Table, ResponseReason.__table__)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """What the database holds for one call's response, as far as its (single) writer knows."""

    id: int
    dossier_id: int | None
    status: str
    satisfied: bool | None
    recording_ref: str | None
    completed: bool
    reasons: frozenset[int]
    answered_via: str | None = None


def _read_stored(session: Session, attempt_id: int) -> StoredResponse | None:
    r = _RESPONSES.c
    row = session.execute(
        select(
            r.id, r.dossier_id, r.status, r.satisfied, r.recording_ref, r.completed_at, r.answered_via
        ).where(r.attempt_id == attempt_id)
    ).one_or_none()
    if row is None:
        return None
    reasons = session.scalars(select(_REASONS.c.reason_code).where(_REASONS.c.response_id == row.id))
    return StoredResponse(
        row.id, row.dossier_id, row.status, row.satisfied, row.recording_ref, row.completed_at is not None,
        frozenset(reasons), row.answered_via,
    )  # fmt: skip


def save_survey_progress(
    session: Session,
    *,
    attempt_id: int,
    context: CallContext,
    result: SurveyResult,
    now: datetime,
    stored: StoredResponse | None = None,
    first_save: bool = False,
) -> StoredResponse:
    """Create or update the response of one call attempt from the flow's current result.

    Idempotent and monotonic: saving the same result twice changes nothing, an older result never
    undoes a newer one (reasons are only added, the status only moves forward). Returns what is now
    stored; a caller that is the only writer of this attempt (one call) may pass it back as
    ``stored`` to skip re-reading the row, and say ``first_save=True`` when it has stored nothing
    yet: the row is then inserted without a read first (``INSERT … ON CONFLICT DO NOTHING``; should
    a row exist after all, it is read and updated as usual). Written with Core statements, not ORM
    objects: it runs after every answer of hundreds of concurrent calls.
    """
    status = response_status(result)
    connection = session.connection()

    def new_row() -> dict[str, Any]:
        return _new_response_row(
            attempt_id=attempt_id, context=context, result=result, status=status, now=now
        )

    inserted: int | None = None
    if stored is None and first_save:  # None back: the row was there after all
        statement = _insert_unless_stored(connection.dialect.name)
        inserted = driver.execute(connection, statement, new_row()).scalar_one_or_none()
    if stored is None and inserted is None:
        stored = _read_stored(session, attempt_id)
        if stored is None:
            inserted = driver.execute(connection, _INSERT_RESPONSE, new_row()).scalar_one()
    if inserted is not None:
        stored = StoredResponse(
            int(inserted), context.dossier_id, status.value, result.satisfied, result.recording_ref,
            result.ended, frozenset(), result.answered_via,
        )  # fmt: skip
    else:
        assert stored is not None  # the row exists: read above or passed in
        if stored.dossier_id != context.dossier_id:
            raise ValueError(
                f"attempt {attempt_id} already belongs to dossier {stored.dossier_id}, "
                f"not {context.dossier_id}"
            )
        changes: dict[str, object] = {}
        if _STATUS_RANK[status] > _STATUS_RANK[ResponseStatus(stored.status)]:
            changes["status"] = status.value
        if result.satisfied is not None and result.satisfied != stored.satisfied:
            changes["satisfied"] = result.satisfied
            if stored.satisfied is None:
                changes["answered_at"] = now
        if result.answered_via and result.answered_via != stored.answered_via:
            changes["answered_via"] = result.answered_via
        if result.recording_ref and stored.recording_ref is None:
            changes["recording_ref"] = result.recording_ref
            changes["comment_status"] = "pending"  # the transcript comes later, off the call's path
        if result.ended and not stored.completed:
            changes["completed_at"] = now
        if changes:
            params = {"resp_id": stored.id, **{f"new_{c}": v for c, v in changes.items()}}
            driver.execute(session.connection(), _update_statement(tuple(sorted(changes))), params)
            stored = replace(
                stored,
                status=str(changes.get("status", stored.status)),
                satisfied=result.satisfied if "satisfied" in changes else stored.satisfied,
                recording_ref=stored.recording_ref or result.recording_ref,
                completed=stored.completed or result.ended,
                answered_via=result.answered_via or stored.answered_via,
            )
    new_codes = [code for code in result.reasons if code not in stored.reasons]
    if new_codes:
        session.connection().execute(
            _INSERT_REASONS,
            [{"response_id": stored.id, "reason_code": c, "source": result.reasons[c]} for c in new_codes],
        )
        stored = replace(stored, reasons=stored.reasons | frozenset(new_codes))
    if result.opted_out and context.phone_hash:
        record_opt_out(session, phone_hash=context.phone_hash, source=OPT_OUT_SOURCE_IVR, now=now)
    return stored


# Built once (they run after every answer of every call): no statement construction per save.
_INSERT_RESPONSE = insert(_RESPONSES).returning(_RESPONSES.c.id)
_INSERT_REASONS = insert(_REASONS)


@lru_cache(maxsize=4)
def _insert_unless_stored(dialect: str) -> Insert:
    """INSERT … ON CONFLICT (attempt_id) DO NOTHING RETURNING id, in the dialect's own form."""
    return (
        dialect_insert(dialect)(_RESPONSES)
        .on_conflict_do_nothing(index_elements=[_RESPONSES.c.attempt_id])
        .returning(_RESPONSES.c.id)
    )


@lru_cache(maxsize=64)
def _update_statement(columns: tuple[str, ...]) -> Update:
    """UPDATE of the given columns of one response (``resp_id``; values ``new_<column>``)."""
    return (
        update(_RESPONSES)
        .where(_RESPONSES.c.id == bindparam("resp_id"))
        .values({c: bindparam(f"new_{c}") for c in columns})
    )


def _new_response_row(
    *, attempt_id: int, context: CallContext, result: SurveyResult, status: ResponseStatus, now: datetime
) -> dict[str, Any]:
    """The columns of a call's response when it is first stored."""
    return {
        "channel": ResponseChannel.CALL.value,
        "attempt_id": attempt_id,
        "dossier_id": context.dossier_id,
        "agency_id": context.agency_id,
        "field_id": context.field_id,
        "dossier_timeliness": context.timeliness,
        "phone_hash": context.phone_hash,
        "questionnaire_version": result.questionnaire_version,
        "status": status.value,
        "satisfied": result.satisfied,
        "answered_via": result.answered_via,
        "recording_ref": result.recording_ref,
        "comment_status": "pending" if result.recording_ref else "none",
        "started_at": now,
        "answered_at": now if result.satisfied is not None else None,
        "completed_at": now if result.ended else None,
    }


def get_response(session: Session, *, attempt_id: int) -> SurveyResponse | None:
    """The stored response of a call attempt, freshly read (with its reasons)."""
    return session.execute(
        select(SurveyResponse)
        .where(SurveyResponse.attempt_id == attempt_id)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


# Completed or partial is decided by the UPDATE itself, on the row as stored when it runs: Twilio's
# "completed" callback can race the last /step request (a key pressed, then an immediate hang-up).
# PostgreSQL re-evaluates the statement on the newest row version once the step's transaction has
# committed (SQLite takes its write lock first), so an answer stored a moment earlier is never
# overwritten with "partial" decided on a stale read.
_R = _RESPONSES.c
_HAS_REASON = exists().where(_REASONS.c.response_id == _R.id)
_CLOSE_UNFINISHED = (
    update(_RESPONSES)
    .where(_R.attempt_id == bindparam("c_attempt"), _R.status == ResponseStatus.IN_PROGRESS.value)
    .values(
        status=case(
            (
                or_(_R.satisfied.is_(True), and_(_R.satisfied.is_(False), _HAS_REASON)),
                ResponseStatus.COMPLETED.value,
            ),
            else_=ResponseStatus.PARTIAL.value,
        ),
        completed_at=bindparam("c_now"),
    )
)


def close_unfinished_response(session: Session, *, attempt_id: int, now: datetime) -> SurveyResponse | None:
    """End a response whose call ended without the flow seeing it (Twilio hang-up mid-question)."""
    session.flush()
    session.connection().execute(_CLOSE_UNFINISHED, {"c_attempt": attempt_id, "c_now": now})
    return get_response(session, attempt_id=attempt_id)


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
    # One Core statement (it runs for every finished answered call): no ORM object, no lazy load.
    row = session.execute(
        select(*_survey_state_columns()).where(_RESPONSES.c.attempt_id == attempt_id)
    ).one_or_none()
    return SurveyOutcome.NONE if row is None else survey_outcome_from_state(*row)


def with_survey_state(
    query: Select[*tuple[Any, ...]], attempt_id: ColumnElement[int] | InstrumentedAttribute[int]
) -> Select[*tuple[Any, ...]]:
    """``query`` plus the three columns :func:`survey_outcome_from_state` takes, for the response of
    ``attempt_id`` (an outer join: NULLs when the IVR never started). For a caller that reads its own
    row anyway — the dialer's finish — so that the survey outcome costs no second statement."""
    return query.outerjoin(_RESPONSES, _RESPONSES.c.attempt_id == attempt_id).add_columns(
        *_survey_state_columns()
    )


def _survey_state_columns() -> tuple[Any, Any, Any]:
    """The columns :func:`survey_outcome_from_state` takes: status, answer, whether it has reasons."""
    r = _RESPONSES.c
    return r.status, r.satisfied, exists().where(_REASONS.c.response_id == r.id)


def survey_outcome_from_state(
    status: str | None, satisfied: bool | None, with_reasons: bool | None
) -> SurveyOutcome:
    """The survey outcome of a stored response's status, answer and whether it has reasons."""
    if status is None:
        return SurveyOutcome.NONE
    if status == ResponseStatus.OPTED_OUT.value:
        return SurveyOutcome.OPTED_OUT
    if satisfied is True or (satisfied is False and with_reasons):
        return SurveyOutcome.COMPLETED
    if satisfied is not None:
        return SurveyOutcome.PARTIAL
    return SurveyOutcome.NO_INPUT


# -------------------------------------------------------------------------------------- adapter

_transient = retry(
    retry=retry_if_exception_type(OperationalError),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.05, max=0.5),
    reraise=True,
)
T = TypeVar("T")


class SharedTransactions(Protocol):
    """Runs one database step in a transaction it may share with other steps and answers only after
    the commit that holds it (the trunk owner's ``DbBatcher.run``). A busy simulator owner stores the
    answers of hundreds of concurrent surveys: one transaction each (pool checkout and ping, BEGIN,
    COMMIT) cost more CPU than the statements themselves."""

    def __call__(self, step: Callable[[Session], T], /) -> Awaitable[T]: ...


class DbRecorder:
    """The driver's recorder: every change is committed on a worker thread, in order, off the call's path.

    ``save`` returns at once, so a database write never delays the next prompt; while one write
    runs, newer results replace the queued one (each write stores the whole, monotonic state, so
    skipping an intermediate one loses nothing). ``flush`` waits until the latest result is stored
    and raises if it could not be; :func:`~callcenter.ivr.driver.run_survey` calls it at the end.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        attempt_id: int,
        context: CallContext,
        clock: Clock,
        executor: Executor | None = None,
        shared: SharedTransactions | None = None,
    ) -> None:
        self._sessions = sessions
        self.attempt_id = attempt_id
        self.context = context
        self._clock = clock
        self._executor = executor
        self._shared = shared
        self._pending: SurveyResult | None = None
        self._stored: StoredResponse | None = None
        self._writer: asyncio.Task[None] | None = None
        self.writes = 0

    def _step(self, result: SurveyResult, session: Session) -> StoredResponse:
        return save_survey_progress(
            session,
            attempt_id=self.attempt_id,
            context=self.context,
            result=result,
            now=self._clock.now(),
            stored=self._stored,
            first_save=self._stored is None,  # nothing committed by this call yet: insert, no read first
        )

    @_transient
    def save_sync(self, result: SurveyResult) -> None:
        with session_scope(self._sessions) as session:
            stored = self._step(result, session)
        self._stored = stored  # only after the commit: a failed write is re-read next time
        self.writes += 1

    async def _save_shared(self, result: SurveyResult) -> None:
        """One write as a step of the caller's shared transactions (same retries as :meth:`save_sync`)."""
        assert self._shared is not None
        for retry_no in range(3):  # as _transient: OperationalError retried twice, backing off
            try:
                stored = await self._shared(partial(self._step, result))
                break
            except OperationalError:
                if retry_no == 2:
                    raise
                await asyncio.sleep(min(0.5, 0.05 * 2**retry_no))
        self._stored = stored  # the shared runner answers only after the commit that holds the step
        self.writes += 1

    async def save(self, result: SurveyResult) -> None:
        self._pending = _copy_result(result)  # the flow goes on while the thread writes
        if self._writer is None or self._writer.done():
            if self._writer is not None and not self._writer.cancelled() and self._writer.exception():
                await self._writer  # a failed write surfaces here rather than being lost
            self._writer = asyncio.get_running_loop().create_task(self._write_pending())

    async def _write_pending(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending is not None:
            result, self._pending = self._pending, None
            if self._shared is not None:
                await self._save_shared(result)
            else:
                await loop.run_in_executor(self._executor, partial(self.save_sync, result))

    @property
    def response_id(self) -> int | None:
        """The stored response's id once a write has committed (None before)."""
        return None if self._stored is None else self._stored.id

    async def flush(self) -> None:
        """Wait until the latest saved result is committed (raises the write's error, if any)."""
        if self._writer is not None:
            await self._writer


def _copy_result(result: SurveyResult) -> SurveyResult:
    return replace(result, reasons=dict(result.reasons), via=set(result.via))
