"""The dialer's database work: releasing due targets as attempts, moving attempts, finishing them.

Keyword-only functions on an explicit session; none of them commits (the task, the trunk owner or
the HTTP request does). Every status change goes through :func:`callcenter.dialer.state.compare_and_set`,
and the campaign hears about an attempt exactly once: in the transaction that won the move to FINISHED
(``record_attempt_result``) or to CANCELLED before any call (``release_target``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Insert, Integer, Table, bindparam, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from callcenter.campaign.service import (
    DueTarget,
    claim_due_targets,
    record_attempt_result_if,
    release_target,
    split_result_context,
    with_result_context,
)
from callcenter.core import driver
from callcenter.core.outcomes import CallOutcome, SurveyOutcome
from callcenter.core.phones import national_format
from callcenter.core.pii import PiiCipher, mask_digit_runs
from callcenter.dialer.adapters.base import DialRequest
from callcenter.dialer.models import AttemptStatus, CallAttempt
from callcenter.dialer.state import (
    IS_ACTIVE,
    LIVE_STATUSES,
    compare_and_set,
    compare_and_set_returning,
    compare_and_set_statement,
)
from callcenter.intake.models import Dossier
from callcenter.ivr.call_token import call_token
from callcenter.ivr.service import survey_outcome_from_state, with_survey_state

S = AttemptStatus
_ANSWERED_LIKE = frozenset({CallOutcome.ANSWERED, CallOutcome.DROPPED, CallOutcome.MACHINE})


@dataclass(frozen=True, slots=True)
class AttemptRef:
    """The few columns a task needs to act on an attempt (ORM objects never cross a task boundary)."""

    id: int
    target_id: int
    campaign_id: int
    dossier_id: int
    status: AttemptStatus
    trunk: str | None
    server: str | None
    channel_id: str | None
    updated_at: datetime
    answered_at: datetime | None


_REF_COLUMNS = (
    CallAttempt.id,
    CallAttempt.target_id,
    CallAttempt.campaign_id,
    CallAttempt.dossier_id,
    CallAttempt.status,
    CallAttempt.trunk,
    CallAttempt.server,
    CallAttempt.channel_id,
    CallAttempt.updated_at,
    CallAttempt.answered_at,
)


def _ref(row: Sequence[object]) -> AttemptRef:
    values = list(row)
    values[4] = AttemptStatus(str(values[4]))
    return AttemptRef(*values)  # type: ignore[arg-type]


def _ref_and_rest(row: Sequence[Any]) -> tuple[AttemptRef, tuple[Any, ...]]:
    """A row that starts with :data:`_REF_COLUMNS`: the attempt, and the columns read after them."""
    values = tuple(row)
    return _ref(values[: len(_REF_COLUMNS)]), values[len(_REF_COLUMNS) :]


# Built once: it runs several times per call (Core, through the session's connection: no ORM work).
_GET_ATTEMPT = select(*_REF_COLUMNS).where(CallAttempt.id == bindparam("ref_id"))


def get_attempt(session: Session, *, attempt_id: int) -> AttemptRef | None:
    row = driver.execute(session.connection(), _GET_ATTEMPT, {"ref_id": attempt_id}).one_or_none()
    return None if row is None else _ref(row)


def count_active_attempts(session: Session) -> int:
    """Attempts not yet final: each holds (or is about to hold) a channel."""
    return int(session.scalar(select(func.count()).select_from(CallAttempt).where(IS_ACTIVE)) or 0)


def release_due_attempts(session: Session, *, now: datetime, limit: int, trunk: str) -> list[int]:
    """Claim up to ``limit`` due targets from the campaigns and create one QUEUED attempt for each.

    The caller commits, *then* sends one ``dialer.place_call`` per returned id: a task must never
    run before the row it names exists.
    """
    targets = claim_due_targets(session, now=now, limit=limit)
    return create_attempts(session, targets=targets, trunk=trunk, now=now)


def create_attempts(
    session: Session, *, targets: Sequence[DueTarget], trunk: str, now: datetime
) -> list[int]:
    """One QUEUED attempt per claimed target, with its ChannelId; their ids (in no particular order).

    The dossier's agency and field (read by the claim) are copied onto the attempt for the summaries.
    """
    if not targets:
        return []
    columns = {
        "target_id": [t.target_id for t in targets],
        "campaign_id": [t.campaign_id for t in targets],
        "dossier_id": [t.dossier_id for t in targets],
        "agency_id": [t.dossier_agency_id for t in targets],
        "field_id": [t.field_id for t in targets],
        "channel_id": [str(uuid.uuid4()) for _ in targets],  # the AMI ChannelId, known before any originate
    }
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # One statement whatever the batch size: the rows travel as arrays (a multi-row VALUES list
        # was a new statement text for each size, which psycopg parsed anew every release).
        params = {f"a_{name}": values for name, values in columns.items()} | {"a_trunk": trunk, "a_now": now}
        return [int(r[0]) for r in connection.execute(_INSERT_ATTEMPTS_UNNEST, params)]
    shared = {"trunk": trunk, "status": S.QUEUED.value, "created_at": now, "updated_at": now}
    rows = [
        dict(zip(columns, values, strict=True)) | shared | {"error_count": 0}
        for values in zip(*columns.values(), strict=True)
    ]
    return [int(r[0]) for r in connection.execute(_INSERT_ATTEMPTS, rows)]


_ATTEMPTS: Table = CallAttempt.__table__  # type: ignore[assignment]
_INSERT_ATTEMPTS = insert(_ATTEMPTS).returning(_ATTEMPTS.c.id)


def _insert_attempts_unnest() -> Insert:
    """PostgreSQL: ``INSERT … SELECT unnest(:targets), unnest(:campaigns), …`` (arrays zipped row by row)."""
    c = _ATTEMPTS.c
    arrays = {
        name: func.unnest(bindparam(f"a_{name}", type_=postgresql.ARRAY(c[name].type)))
        for name in ("target_id", "campaign_id", "dossier_id", "agency_id", "field_id", "channel_id")
    }
    constants = {
        "trunk": bindparam("a_trunk", type_=c.trunk.type),
        "status": literal(S.QUEUED.value, c.status.type),
        "created_at": bindparam("a_now", type_=c.created_at.type),
        "updated_at": bindparam("a_now", type_=c.updated_at.type),
        "error_count": literal(0, Integer),
    }
    source = select(*arrays.values(), *constants.values())
    return insert(_ATTEMPTS).from_select([*arrays, *constants], source).returning(c.id)


_INSERT_ATTEMPTS_UNNEST = _insert_attempts_unnest()


def claim_attempt(
    session: Session | Connection,
    *,
    attempt_id: int,
    worker: str,
    server: str,
    lease_expires_at: datetime,
    now: datetime,
    created_since: datetime | None = None,
) -> bool:
    """QUEUED → CLAIMED by one worker holding a channel lease on ``server``.

    With ``created_since``, an attempt released before then is not claimed: the calling window,
    the campaign's status and the opt-out list were checked when it was released, and that check
    is too old to dial on (workers that were down for hours must not call at night).
    """
    return compare_and_set(
        session,
        attempt_id=attempt_id,
        expected=S.QUEUED,
        new=S.CLAIMED,
        now=now,
        created_since=created_since,
        claimed_by=worker,
        server=server,
        lease_expires_at=lease_expires_at,
    )


def give_back(
    session: Session,
    *,
    attempt: AttemptRef,
    now: datetime,
    retry_after: timedelta,
    detail: str,
    expected: frozenset[AttemptStatus] = frozenset({S.QUEUED, S.CLAIMED}),
) -> bool:
    """Cancel an attempt that never reached the trunk and hand its target back without using a retry."""
    if not compare_and_set(
        session,
        attempt_id=attempt.id,
        expected=expected,
        new=S.CANCELLED,
        now=now,
        detail=detail,
        ended_at=now,
    ):
        return False
    release_target(session, target_id=attempt.target_id, now=now, retry_at=now + retry_after)
    return True


def mark_dialing(session: Session, *, attempt_id: int, now: datetime) -> bool:
    """CLAIMED → DIALING, committed *before* the originate leaves: from here on a call may exist."""
    return compare_and_set(
        session, attempt_id=attempt_id, expected=S.CLAIMED, new=S.DIALING, now=now, dialed_at=now
    )


# What the trunk owner needs to place a call, read by the CLAIMED → DIALING statement itself.
_DIALING_RETURNS = (
    *_REF_COLUMNS,
    select(Dossier.phone_enc)
    .where(Dossier.id == CallAttempt.dossier_id)
    .correlate(CallAttempt)
    .scalar_subquery(),
)


def start_dialing(
    session: Session, *, attempt_id: int, now: datetime, claimed_since: datetime | None = None
) -> tuple[AttemptRef, bytes | None] | None:
    """:func:`mark_dialing` returning the attempt (as now stored) and its dossier's encrypted phone.

    One round trip per call placed instead of a read and a write. ``None`` when the attempt was not
    CLAIMED (already dialled, cancelled or reaped: never twice) or, with ``claimed_since``, was
    claimed before then (a stale outbox entry after an outage, which the reaper gives back).
    Committed before the originate leaves.
    """
    row = compare_and_set_returning(
        session,
        attempt_id=attempt_id,
        expected=S.CLAIMED,
        new=S.DIALING,
        now=now,
        returning=_DIALING_RETURNS,
        changed_since=claimed_since,
        dialed_at=now,
    )
    if row is None:
        return None
    attempt, (phone_enc,) = _ref_and_rest(row)
    return attempt, phone_enc


def set_provider_call_id(session: Session, *, attempt_id: int, provider_call_id: str) -> None:
    """Keep the provider's id (Twilio CallSid) for callbacks and the reaper."""
    session.execute(
        update(CallAttempt)
        .where(CallAttempt.id == attempt_id)
        .values(channel_id=provider_call_id)
        .execution_options(synchronize_session=False)
    )


def mark_ringing(session: Session, *, attempt_id: int, now: datetime) -> bool:
    return compare_and_set(session, attempt_id=attempt_id, expected=S.DIALING, new=S.RINGING, now=now)


def mark_answered(session: Session, *, attempt_id: int, now: datetime) -> bool:
    return compare_and_set(
        session,
        attempt_id=attempt_id,
        expected=frozenset({S.DIALING, S.RINGING}),
        new=S.IN_SURVEY,
        now=now,
        answered_at=now,
    )


# The attempt, its target and campaign as recording the result needs them, and its survey
# response's state: one statement per call finished.
_GET_ATTEMPT_TO_FINISH = with_survey_state(
    with_result_context(
        select(*_REF_COLUMNS).where(CallAttempt.id == bindparam("ref_id")), CallAttempt.target_id
    ),
    CallAttempt.id,
)


def finish_attempt(
    session: Session,
    *,
    attempt_id: int,
    outcome: CallOutcome,
    now: datetime,
    hangup_cause: int | None = None,
    detail: str | None = None,
) -> bool:
    """A live attempt → FINISHED with its outcome, and the campaign told, exactly once.

    The survey outcome comes from the IVR's records for this attempt. A call we lost track of
    (``FAILED``) that nevertheless has survey answers was answered and cut: it becomes ``DROPPED``.
    Two statements on PostgreSQL: the read of the attempt with all it needs, and the compare-and-set
    with the campaign's bookkeeping (``record_attempt_result_if``), which happens only if the CAS won.
    """
    row = driver.execute(session.connection(), _GET_ATTEMPT_TO_FINISH, {"ref_id": attempt_id}).one_or_none()
    if row is None:
        return False
    attempt, rest = _ref_and_rest(row)
    context, survey_state = split_result_context(rest)
    if attempt.status not in LIVE_STATUSES:
        return False
    survey = SurveyOutcome.NONE
    if outcome in _ANSWERED_LIKE or outcome is CallOutcome.FAILED or attempt.answered_at is not None:
        survey = survey_outcome_from_state(*survey_state)
        if outcome is CallOutcome.FAILED and survey is not SurveyOutcome.NONE:
            outcome = CallOutcome.DROPPED
    cas, cas_params = compare_and_set_statement(
        attempt_id=attempt_id,
        expected=LIVE_STATUSES,
        new=S.FINISHED,
        now=now,
        outcome=outcome.value,
        survey_outcome=survey.value,
        hangup_cause=hangup_cause,
        # A trunk's own words may quote the number ("Account not authorized to call +84…"): the
        # phone is encrypted everywhere else, so it is masked here as in the logs.
        detail=mask_digit_runs(detail) if detail else detail,
        ended_at=now,
    )
    recorded = record_attempt_result_if(
        session,
        only_if=cas,
        only_if_params=cas_params,
        target_id=attempt.target_id,
        outcome=outcome,
        survey=survey,
        now=now,
        context=context,
    )
    return recorded is not None


# The attempt with its dossier's encrypted phone: one read per call placed, not two.
_GET_ATTEMPT_FOR_DIALING = (
    select(*_REF_COLUMNS, Dossier.phone_enc)
    .outerjoin(Dossier, Dossier.id == CallAttempt.dossier_id)
    .where(CallAttempt.id == bindparam("ref_id"))
)


def attempt_for_dialing(session: Session, *, attempt_id: int) -> tuple[AttemptRef, bytes | None] | None:
    """The attempt and its dossier's encrypted phone (``None`` when the attempt does not exist)."""
    row = session.connection().execute(_GET_ATTEMPT_FOR_DIALING, {"ref_id": attempt_id}).one_or_none()
    if row is None:
        return None
    attempt, (phone_enc,) = _ref_and_rest(row)
    return attempt, phone_enc


def dial_request(
    *, attempt: AttemptRef, phone_enc: bytes | None, cipher: PiiCipher, token_key: bytes
) -> DialRequest:
    """What the trunk needs to place the call: the clear number, decrypted only here, and the token the
    IVR checks before it surveys the call (``token_key`` from ``ivr.call_token.call_token_key``)."""
    if phone_enc is None:
        raise LookupError(f"dossier {attempt.dossier_id} of call attempt {attempt.id} has no phone")
    return DialRequest(
        attempt_id=attempt.id,
        dossier_id=attempt.dossier_id,
        channel_id=attempt.channel_id or "",
        number=national_format(cipher.decrypt(phone_enc)),
        server=attempt.server or "",
        call_token=call_token(token_key, attempt_id=attempt.id, dossier_id=attempt.dossier_id),
    )


def stale_attempts(
    session: Session, *, status: AttemptStatus, older_than: datetime, limit: int = 500
) -> list[AttemptRef]:
    """Attempts that have sat in ``status`` since before ``older_than`` (the reaper's work list)."""
    rows = session.execute(
        select(*_REF_COLUMNS)
        .where(IS_ACTIVE, CallAttempt.status == status.value, CallAttempt.updated_at < older_than)
        .order_by(CallAttempt.updated_at)
        .limit(limit)
    ).all()
    return [_ref(r) for r in rows]


def live_attempts_on(session: Session, *, trunk: str, server: str) -> list[AttemptRef]:
    """Attempts a trunk owner of ``server`` may have a call for (used when an owner starts)."""
    rows = session.execute(
        select(*_REF_COLUMNS).where(
            IS_ACTIVE,
            CallAttempt.trunk == trunk,
            CallAttempt.server == server,
            CallAttempt.status.in_([s.value for s in LIVE_STATUSES]),
        )
    ).all()
    return [_ref(r) for r in rows]


def touch_queued(session: Session, *, attempt_id: int, now: datetime) -> None:
    """Restart a QUEUED attempt's clock when its task is sent again (the reaper re-sends lost tasks)."""
    session.execute(
        update(CallAttempt)
        .where(CallAttempt.id == attempt_id, CallAttempt.status == S.QUEUED.value)
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
