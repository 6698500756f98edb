"""Campaign services: the one entry point for the CLI, the HTTP API and the dialer.

Every function takes an explicit session and keyword-only arguments and never commits: the task or
request boundary does. State changes of call targets are compare-and-set ``UPDATE``s
(``… WHERE id = :id AND state = :expected``), so a lost race changes nothing.

The dialer's contract (see ``docs/campaigns.md``) lives here: :func:`claim_due_targets`,
:func:`record_attempt_result`, :func:`release_target`. Creation and replacement draws are in
:mod:`callcenter.campaign.lists`, the lifecycle in :mod:`callcenter.campaign.lifecycle`; both are
re-exported so callers import from one place.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    Insert,
    Integer,
    Select,
    Table,
    Update,
    any_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

from callcenter.campaign.errors import CampaignNotFound
from callcenter.campaign.lifecycle import (
    ACTIVE_STATES,
    FINAL_STATUSES,
    OTHER_LIVE_TARGET,
    SYSTEM_ACTOR,
    TRANSITIONS,
    campaign_calendar,
    campaign_events,
    complete_if_done,
    get_campaign,
    list_campaigns,
    pause_campaign,
    resume_campaign,
    start_campaign,
    stop_campaign,
    tick,
    transition,
)
from callcenter.campaign.lists import AGENCY_LIST_CLOSED, create_campaign, replenish
from callcenter.campaign.models import CallTarget, Campaign, CampaignStatus, PhoneCallGuard, TargetState
from callcenter.campaign.retry import decide, retry_key
from callcenter.campaign.rules import CallingRules, parse_rules
from callcenter.campaign.windows import CallingCalendar
from callcenter.core import driver
from callcenter.core.clock import VN_TZ
from callcenter.core.db import sql_constant
from callcenter.core.errors import ValidationError
from callcenter.core.models import OptOut
from callcenter.core.outcomes import CallOutcome, SurveyOutcome
from callcenter.intake.models import Dossier
from callcenter.ivr.models import ResponseStatus, SurveyResponse

log = logging.getLogger(__name__)

__all__ = [
    "ACTIVE_STATES",
    "FINAL_STATUSES",
    "SYSTEM_ACTOR",
    "TRANSITIONS",
    "DueTarget",
    "ResultContext",
    "campaign_calendar",
    "campaign_events",
    "claim_due_targets",
    "complete_if_done",
    "create_campaign",
    "get_campaign",
    "list_campaigns",
    "pause_campaign",
    "record_attempt_result",
    "record_attempt_result_if",
    "release_target",
    "replenish",
    "resume_campaign",
    "split_result_context",
    "start_campaign",
    "stop_campaign",
    "tick",
    "transition",
    "with_result_context",
]


@dataclass(frozen=True, slots=True)
class DueTarget:
    """A call target handed to the dialer: it is IN_CALL until reported back or released."""

    target_id: int
    campaign_id: int
    dossier_id: int
    agency_id: int
    phone_hash: str
    # The dossier's own placement now (read with the claim), copied onto the attempt for the summaries.
    dossier_agency_id: int
    field_id: int


# ---------------------------------------------------------------------------------------------------
# The dialer's contract
# ---------------------------------------------------------------------------------------------------


def claim_due_targets(session: Session, *, now: datetime, limit: int) -> list[DueTarget]:
    """Hand out up to ``limit`` targets that may be called right now, each moved QUEUED → IN_CALL.

    Only targets of RUNNING campaigns, due, inside the campaign's calling window (local time, holidays
    skipped) and before its end; never an opted-out phone, a phone already in a call, or one that used
    up today's attempts. Targets that turn out no longer eligible are closed (and replaced); targets
    that cannot be called now are moved to when they can.
    """
    if limit <= 0:
        return []
    # Every statement of a claim is built once and runs by Core on the session's connection: a claim
    # runs several times a second, and building, caching and ORM-executing its seven statements
    # afresh each time cost more than running them.
    session.flush()  # changes earlier in this transaction count, as an ORM query's autoflush would see them
    connection = session.connection()
    # The running campaigns with the schedule columns the checks below need (one statement).
    running = {
        row.id: CampaignSchedule(*row) for row in connection.execute(_RUNNING_CAMPAIGNS, {"r_now": now})
    }
    if not running:
        return []
    # The running campaigns first (a handful of rows), then the targets alone: the query then walks
    # ix_call_targets_due in its own order and stops after the limit. Joined to the campaigns, the
    # planner misjudged how many targets pass the join and sorted every due target instead (91 ms at
    # 85,000 targets, several times a second).
    # The few columns needed, by Core on the session's connection: no ORM objects to load and
    # expire again for the targets moved by the bulk UPDATEs below (several claims a second).
    # The phone is the dossier's *current* one (a later import may have corrected it since the draw):
    # every check below (opt-out, cool-off, one call at a time, daily cap) is about the number that
    # will really be dialled, and a target whose number changed is re-pointed to it first.
    params = {"q_now": now, "q_running": sorted(running), "q_limit": limit * 3}
    query = _candidates_statement(_dialect(session))
    candidates = [_current_phone(connection, row, now) for row in connection.execute(query, params)]
    if not candidates:
        return []

    lookups = _claim_lookups(_dialect(session))
    campaign_ids = sorted({t.campaign_id for t in candidates})
    campaigns = {cid: running[cid] for cid in campaign_ids}
    rules = {cid: parse_rules(c.calling_rules) for cid, c in campaigns.items()}
    calendars = {cid: campaign_calendar(session, c, rules[cid]) for cid, c in campaigns.items()}
    phones = {t.phone_hash for t in candidates}
    opted_out = set(connection.execute(lookups.opted_out, {"o_phones": sorted(phones)}).scalars())
    surveyed_dossiers = _dossiers_already_surveyed(connection, lookups, [t.dossier_id for t in candidates])
    recent_phone_surveys = _last_phone_survey(connection, lookups, phones)
    # A phone is called for one target per campaign. Two top-ups of different agencies running at
    # once (each locks only its own agency) can both draw it, and a corrected number can equal
    # another target's: the target drawn first (lowest id) keeps the phone, the others are skipped.
    same_phone: dict[tuple[int, str], list[tuple[int, str]]] = {}
    for row in connection.execute(
        lookups.same_phone_targets, {"p_campaigns": campaign_ids, "p_phones": sorted(phones)}
    ):
        same_phone.setdefault((row.campaign_id, row.phone_hash), []).append((row.id, row.state))

    claimed: list[DueTarget] = []
    to_replenish: set[tuple[int, int]] = set()
    today = now.astimezone(VN_TZ).date()
    _ensure_guards(session, phones, now)
    # Eligible targets whose phones are asked for together (one statement on PostgreSQL): as many as
    # are still needed, one target per phone (a second target of the phone waits for the next round
    # and finds it held, as it would have one by one).
    ready: list[_Candidate] = []
    schedules = _Schedules(rules=rules, calendars=calendars, campaigns=campaigns)

    def take_phones() -> None:
        claimed.extend(_take_phones(session, ready, schedules, today=today, now=now))
        ready.clear()

    for target in candidates:
        if len(claimed) + len(ready) >= limit:
            take_phones()
            if len(claimed) >= limit:
                break
        campaign_rules = rules[target.campaign_id]
        calendar = calendars[target.campaign_id]
        ends_at = campaigns[target.campaign_id].ends_at
        if not calendar.is_open(now):
            _postpone(session, target, calendar.next_open(now), ends_at, now)
            continue
        # No longer eligible: closed (and replaced) rather than called.
        last_survey = recent_phone_surveys.get(target.phone_hash)
        cooloff = timedelta(days=campaign_rules.caps.cooloff_days)
        closing: TargetState | None = None
        if target.phone_hash in opted_out:
            closing = TargetState.OPTED_OUT
        elif any(
            other != target.id and (other < target.id or state != TargetState.QUEUED.value)
            for other, state in same_phone.get((target.campaign_id, target.phone_hash), ())
        ):
            closing = TargetState.SKIPPED  # another target of the campaign has this phone
        elif target.dossier_id in surveyed_dossiers or (
            last_survey is not None and last_survey >= now - cooloff
        ):
            closing = TargetState.SKIPPED
        if closing is not None:
            if _close(session, target, closing, now):
                to_replenish.add((target.campaign_id, target.agency_id))
            continue
        if any(r.phone_hash == target.phone_hash for r in ready):
            take_phones()
        ready.append(target)
    take_phones()
    if claimed:
        # Every phone is held: move the targets QUEUED → IN_CALL in one statement (not one per target;
        # this runs several times a second). A target that is no longer QUEUED gives its phone back.
        params = {"m_ids": [t.target_id for t in claimed], "m_now": now}
        moved_ids = set(connection.execute(lookups.move_to_in_call, params).scalars())
        for t in [t for t in claimed if t.target_id not in moved_ids]:
            _release_phone(session, phone_hash=t.phone_hash, target_id=t.target_id, now=now, uncount=True)
        claimed = [t for t in claimed if t.target_id in moved_ids]
    for campaign_id, agency_id in sorted(to_replenish):
        replenish(session, campaign_id=campaign_id, agency_id=agency_id, now=now)
    session.flush()
    return claimed


class ResultContext(NamedTuple):
    """What recording a result needs of the target and its campaign, read by the caller with its own
    row (:func:`with_result_context`, :func:`split_result_context`): one statement per call result."""

    state: str
    campaign_id: int
    agency_id: int
    phone_hash: str
    attempts: int
    attempts_by_outcome: dict[str, int] | None
    schedule: CampaignSchedule | None  # None: the campaign does not exist


def with_result_context(
    query: Select[*tuple[Any, ...]], target_id: ColumnElement[int] | InstrumentedAttribute[int]
) -> Select[*tuple[Any, ...]]:
    """``query`` plus the columns :func:`split_result_context` reads, for the target ``target_id``
    (outer joins: NULLs when it does not exist). For the dialer's finish, which reads its attempt anyway."""
    return (
        query.outerjoin(_TARGETS, _TARGETS.c.id == target_id)
        .outerjoin(_CAMPAIGNS, _CAMPAIGNS.c.id == _TARGETS.c.campaign_id)
        .add_columns(*_TARGET_AND_SCHEDULE.selected_columns)
    )


def split_result_context(values: Sequence[Any]) -> tuple[ResultContext | None, tuple[Any, ...]]:
    """The :class:`ResultContext` at the start of ``values`` (None if its target does not exist), and
    the columns after it."""
    width = len(_TARGET_AND_SCHEDULE.selected_columns)
    return _result_context(values[:width]), tuple(values[width:])


def _result_context(row: Sequence[Any]) -> ResultContext | None:
    if row[0] is None:  # the target's state is never NULL: no target
        return None
    target, campaign = row[:_TARGET_COLUMNS], row[_TARGET_COLUMNS:]
    return ResultContext._make([*target, None if campaign[0] is None else CampaignSchedule(*campaign)])


def record_attempt_result(
    session: Session,
    *,
    target_id: int,
    outcome: CallOutcome,
    survey: SurveyOutcome,
    now: datetime,
    context: ResultContext | None = None,
) -> TargetState:
    """Record how an attempt ended: IN_CALL → COMPLETED / QUEUED (retry time set) / EXHAUSTED / OPTED_OUT
    (or SKIPPED when no calling time is left). A target that is not IN_CALL is left alone (idempotent).

    ``context``: the target as the caller read it in this transaction (:func:`with_result_context`);
    read here when not given. The move itself re-checks the state.
    """
    state = _record_result(
        session, target_id=target_id, outcome=outcome, survey=survey, now=now, context=context, only_if=None
    )
    assert state is not None  # only a failed ``only_if`` records nothing
    return state


def record_attempt_result_if(
    session: Session,
    *,
    only_if: Update,
    only_if_params: dict[str, Any],
    target_id: int,
    outcome: CallOutcome,
    survey: SurveyOutcome,
    now: datetime,
    context: ResultContext | None = None,
) -> TargetState | None:
    """:func:`record_attempt_result` only if ``only_if`` (an ``UPDATE … RETURNING`` of one row, built
    once: the dialer's compare-and-set of its attempt to FINISHED) changes a row; None when it changed
    none, and then nothing was recorded. On PostgreSQL both are one statement (``only_if``, the
    target's move and its phone's release as data-modifying CTEs, each conditional on the one before).
    """
    return _record_result(
        session,
        target_id=target_id,
        outcome=outcome,
        survey=survey,
        now=now,
        context=context,
        only_if=(only_if, only_if_params),
    )


def _record_result(
    session: Session,
    *,
    target_id: int,
    outcome: CallOutcome,
    survey: SurveyOutcome,
    now: datetime,
    context: ResultContext | None,
    only_if: tuple[Update, dict[str, Any]] | None,
) -> TargetState | None:
    # Core statements, no ORM loads (an ORM load with populate_existing was a tenth of the trunk
    # owner's CPU). Flushed first: changes earlier in this transaction (an operator's pause or stop)
    # count, as an ORM query would see them.
    session.flush()
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    if only_if is not None and not postgres:
        if connection.execute(*only_if).first() is None:
            return None
        only_if = None
    if context is None:
        # The target and its campaign's schedule in one statement (it runs once per finished call).
        row = connection.execute(_TARGET_AND_SCHEDULE, {"t_id": target_id}).one_or_none()
        context = None if row is None else _result_context(row)
    if context is None:
        raise ValidationError(f"call target {target_id} does not exist", field="target_id")
    if context.state != TargetState.IN_CALL.value:
        if only_if is not None and connection.execute(*only_if).first() is None:
            return None
        return TargetState(context.state)
    campaign = context.schedule
    if campaign is None:
        raise CampaignNotFound(f"campaign {context.campaign_id} does not exist")
    rules, calendar = _rules_and_calendar(session, campaign)
    previous = dict(context.attempts_by_outcome or {})
    by_outcome = {**previous, **_bump(previous, outcome, survey)}  # including this attempt
    decision = decide(
        outcome=outcome,
        survey=survey,
        attempts_by_key=by_outcome,
        attempts_total=context.attempts + 1,
        now=now,
        policy=rules.retry,
        calendar=calendar,
        ends_at=campaign.ends_at,
    )
    state, next_at = decision.state, decision.next_attempt_at
    if state == TargetState.QUEUED and CampaignStatus(campaign.status) in FINAL_STATUSES:
        state, next_at = TargetState.SKIPPED, None
    params = {
        "r_id": target_id,
        "r_state": state.value,
        "r_by": by_outcome,
        "r_outcome": outcome.value,
        "r_next": next_at,
        "r_completed": now if state == TargetState.COMPLETED else None,
        "r_now": now,
    }
    # Known after the move on PostgreSQL, read by the same statement: the agency's list is closed
    # (nothing to replenish), another target of the campaign is live (nothing to complete).
    list_closed = other_live = False
    if postgres:
        # The move, the release of the phone's guard (only if the move happened) and the two checks
        # in one statement; with ``only_if``, that too, first (one round trip per call result).
        params |= {
            "g_phone": context.phone_hash,
            "g_target": target_id,
            "g_now": now,
            "x_campaign": context.campaign_id,
            "x_agency": context.agency_id,
            "live_campaign": context.campaign_id,
            "live_target": target_id,
        }
        statement = _record_result_statement(only_if[0] if only_if is not None else None)
        won, moved_count, list_closed, other_live = driver.execute(
            connection, statement, params | (only_if[1] if only_if is not None else {})
        ).one()
        if not won:
            return None
    else:
        moved_count = connection.execute(_RECORD_RESULT, params).rowcount
        if moved_count == 1:
            _release_phone(
                session, phone_hash=context.phone_hash, target_id=target_id, now=now, uncount=False
            )
    if moved_count != 1:
        current = connection.execute(_TARGET_FOR_RESULT, {"t_id": target_id}).one()
        return TargetState(current.state)
    to_replenish: set[tuple[int, int]] = set()
    if state not in (TargetState.COMPLETED, TargetState.QUEUED) and not list_closed:
        to_replenish.add((context.campaign_id, context.agency_id))
    if state == TargetState.OPTED_OUT:
        # Never again, in any campaign: close every other queued target of this phone now.
        other_live = False  # those may be this campaign's last live targets: check after closing them
        queued = (CallTarget.phone_hash == context.phone_hash, CallTarget.state == TargetState.QUEUED.value)
        to_replenish.update(
            (c, a)
            for c, a in session.execute(select(CallTarget.campaign_id, CallTarget.agency_id).where(*queued))
        )
        session.execute(
            update(CallTarget)
            .where(*queued)
            .values(state=TargetState.OPTED_OUT.value, next_attempt_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    for campaign_id, agency_id in sorted(to_replenish):
        known = campaign.status if campaign_id == campaign.id else None
        replenish(session, campaign_id=campaign_id, agency_id=agency_id, now=now, status=known)
    # A target requeued for a retry keeps its campaign running; so does another live target (seen by
    # the statement above, after this target's move; a draw by replenish only adds live targets).
    if state.value not in ACTIVE_STATES and not other_live:
        complete_if_done(session, campaign_id=context.campaign_id, now=now, status=campaign.status)
    session.flush()
    loaded = session.identity_map.get(session.identity_key(CallTarget, target_id))
    if loaded is not None:  # a caller's ORM copy of this target is stale now
        session.expire(loaded)
    return state


_TARGETS: Table = CallTarget.__table__  # type: ignore[assignment]
_DOSSIERS: Table = Dossier.__table__  # type: ignore[assignment]
_GUARDS: Table = PhoneCallGuard.__table__  # type: ignore[assignment]
_TARGET_FOR_RESULT = select(
    _TARGETS.c.state,
    _TARGETS.c.campaign_id,
    _TARGETS.c.agency_id,
    _TARGETS.c.phone_hash,
    _TARGETS.c.attempts,
    _TARGETS.c.attempts_by_outcome,
).where(_TARGETS.c.id == bindparam("t_id"))
# IN_CALL → the decided state, by compare-and-set; built once (it runs once per finished call).
_RECORD_RESULT = (
    update(_TARGETS)
    .where(_TARGETS.c.id == bindparam("r_id"), _TARGETS.c.state == TargetState.IN_CALL.value)
    .values(
        state=bindparam("r_state"),
        attempts=_TARGETS.c.attempts + 1,
        attempts_by_outcome=bindparam("r_by"),
        last_outcome=bindparam("r_outcome"),
        next_attempt_at=bindparam("r_next"),
        completed_at=bindparam("r_completed"),
        updated_at=bindparam("r_now"),
    )
)


@lru_cache(maxsize=8)
def _record_result_statement(only_if: Update | None) -> Select[Any]:
    """PostgreSQL: :data:`_RECORD_RESULT` and, only when it moved the target, the guard's release
    (:func:`_release_phone`, not uncounted), as data-modifying CTEs; with ``only_if`` (an UPDATE …
    RETURNING), that first and the move only if it changed a row. Returns whether ``only_if`` changed
    a row (true without one), how many targets moved, :data:`AGENCY_LIST_CLOSED` and
    :data:`OTHER_LIVE_TARGET` (its own target, unmoved in the statement's snapshot, excluded)."""
    record = _RECORD_RESULT
    won: ColumnElement[Any] = literal(True)
    if only_if is not None:
        precondition = only_if.cte("won")
        record = record.where(exists(select(literal(1)).select_from(precondition)))
        won = exists(select(literal(1)).select_from(precondition))
    moved = record.returning(_TARGETS.c.id).cte("moved")
    freed = _release_phone_statement(False).where(exists(select(moved.c.id))).cte("freed")
    moved_count = select(func.count()).select_from(moved).scalar_subquery()
    return select(won, moved_count, AGENCY_LIST_CLOSED, OTHER_LIVE_TARGET).add_cte(freed)


@dataclass(frozen=True, slots=True)
class CampaignSchedule:
    """The columns of a campaign that recording a result and claiming targets need, read by Core
    (an ORM load of the whole campaign was a third of the trunk owner's time in
    :func:`record_attempt_result`)."""

    id: int
    status: str
    starts_at: datetime
    ends_at: datetime
    updated_at: datetime
    calling_rules: dict[str, Any]


_CAMPAIGNS: Table = Campaign.__table__  # type: ignore[assignment]
_CAMPAIGN_SCHEDULE = select(
    _CAMPAIGNS.c.id,
    _CAMPAIGNS.c.status,
    _CAMPAIGNS.c.starts_at,
    _CAMPAIGNS.c.ends_at,
    _CAMPAIGNS.c.updated_at,
    _CAMPAIGNS.c.calling_rules,
).where(_CAMPAIGNS.c.id == bindparam("c_id"))
_TARGET_COLUMNS = len(_TARGET_FOR_RESULT.selected_columns)
_TARGET_AND_SCHEDULE = (
    select(*_TARGET_FOR_RESULT.selected_columns, *_CAMPAIGN_SCHEDULE.selected_columns)
    .select_from(_TARGETS.outerjoin(_CAMPAIGNS, _CAMPAIGNS.c.id == _TARGETS.c.campaign_id))
    .where(_TARGETS.c.id == bindparam("t_id"))
)


# The statements of a claim (claim_due_targets), built once.
_RUNNING_CAMPAIGNS = select(*_CAMPAIGN_SCHEDULE.selected_columns).where(
    _CAMPAIGNS.c.status == CampaignStatus.RUNNING.value,
    _CAMPAIGNS.c.starts_at <= bindparam("r_now"),
    _CAMPAIGNS.c.ends_at > bindparam("r_now"),
)
_OPT_OUTS: Table = OptOut.__table__  # type: ignore[assignment]
_RESPONSES: Table = SurveyResponse.__table__  # type: ignore[assignment]
_COMPLETED_RESPONSE = _RESPONSES.c.status == ResponseStatus.COMPLETED.value
_COMPLETED_TARGET = _TARGETS.c.state == TargetState.COMPLETED.value


def _in_list(column: ColumnElement[Any], name: str, dialect: str) -> ColumnElement[bool]:
    """``column`` in the list bound as ``name``. PostgreSQL: ``= ANY(:array)``, one statement text
    whatever the list's length, so psycopg prepares it and PostgreSQL plans it once (an expanding IN
    was a new text, parsed and planned anew, at nearly every claim); elsewhere an expanding IN."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


class _ClaimLookups(NamedTuple):
    """The statements of a claim that take lists (phones, dossiers, targets), built once per dialect."""

    opted_out: Select[Any]
    move_to_in_call: Update
    surveyed_dossiers: tuple[Select[Any], ...]
    same_phone_targets: Select[Any]
    last_phone_surveys: tuple[Select[Any], ...]
    guards_of: Select[Any]


@lru_cache(maxsize=4)
def _claim_lookups(dialect: str) -> _ClaimLookups:
    t, r, g = _TARGETS.c, _RESPONSES.c, _GUARDS.c
    return _ClaimLookups(
        opted_out=select(_OPT_OUTS.c.phone_hash).where(_in_list(_OPT_OUTS.c.phone_hash, "o_phones", dialect)),
        move_to_in_call=update(_TARGETS)
        .where(_in_list(t.id, "m_ids", dialect), t.state == TargetState.QUEUED.value)
        .values(state=TargetState.IN_CALL.value, updated_at=bindparam("m_now"))
        .returning(t.id),
        surveyed_dossiers=(
            select(r.dossier_id).where(_in_list(r.dossier_id, "s_ids", dialect), _COMPLETED_RESPONSE),
            select(t.dossier_id).where(_in_list(t.dossier_id, "s_ids", dialect), _COMPLETED_TARGET),
        ),
        # The targets of these campaigns that hold these phones and may still call or have called them.
        same_phone_targets=select(t.id, t.campaign_id, t.phone_hash, t.state).where(
            _in_list(t.campaign_id, "p_campaigns", dialect),
            _in_list(t.phone_hash, "p_phones", dialect),
            t.state.in_(
                [
                    sql_constant(s.value)
                    for s in (TargetState.QUEUED, TargetState.IN_CALL, TargetState.COMPLETED)
                ]
            ),
        ),
        last_phone_surveys=(
            select(r.phone_hash, func.max(r.completed_at))
            .where(_in_list(r.phone_hash, "l_phones", dialect), _COMPLETED_RESPONSE)
            .group_by(r.phone_hash),
            select(t.phone_hash, func.max(t.completed_at))
            .where(_in_list(t.phone_hash, "l_phones", dialect), _COMPLETED_TARGET)
            .group_by(t.phone_hash),
        ),
        guards_of=select(g.phone_hash, g.active_target_id, g.day, g.attempts_today).where(
            _in_list(g.phone_hash, "gs_phones", dialect)
        ),
    )


def _rules_and_calendar(
    session: Session, campaign: Campaign | CampaignSchedule
) -> tuple[CallingRules, CallingCalendar]:
    """The campaign's parsed rules and calendar, shared by every transaction of the process briefly.

    The trunk owner records about thirty results a second, each in a short transaction; parsing the
    rules and reading the holidays for each was most of its campaign work. An entry is keyed on the
    database, the campaign, its ``updated_at`` and its rules (so any edit of the campaign is seen at
    once) and lives :data:`_CALENDAR_TTL_SECONDS`: a holiday added or removed is honoured by retry
    decisions at most that much later (claiming due targets reads the calendar afresh).
    """
    engine = session.get_bind().engine
    key = (
        id(engine),
        engine.url,  # hashable as it is: rendering it as text per call cost as much as the lookup
        campaign.id,
        campaign.updated_at,
        json.dumps(campaign.calling_rules, sort_keys=True, default=str),
    )
    now = time.monotonic()
    hit = _CALENDARS.get(key)
    if hit is not None and hit[0] > now:
        return hit[1], hit[2]
    rules = parse_rules(campaign.calling_rules)
    calendar = campaign_calendar(session, campaign, rules)
    if len(_CALENDARS) > 256:
        _CALENDARS.clear()
    _CALENDARS[key] = (now + _CALENDAR_TTL_SECONDS, rules, calendar)
    return rules, calendar


_CALENDAR_TTL_SECONDS = 5.0
_CALENDARS: dict[tuple[object, ...], tuple[float, CallingRules, CallingCalendar]] = {}


def release_target(session: Session, *, target_id: int, now: datetime, retry_at: datetime) -> TargetState:
    """Give an IN_CALL target back without counting an attempt (pacer throttled, trunk unavailable)."""
    target = session.get(CallTarget, target_id, populate_existing=True)
    if target is None:
        raise ValidationError(f"call target {target_id} does not exist", field="target_id")
    moved = session.execute(
        update(CallTarget)
        .where(CallTarget.id == target_id, CallTarget.state == TargetState.IN_CALL.value)
        .values(state=TargetState.QUEUED.value, next_attempt_at=max(retry_at, now), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount == 1:  # type: ignore[attr-defined]
        _release_phone(session, phone_hash=target.phone_hash, target_id=target_id, now=now, uncount=True)
    session.flush()
    session.refresh(target)
    return TargetState(target.state)


# --- helpers of the contract -----------------------------------------------------------------------


def _bump(by_outcome: dict[str, int], outcome: CallOutcome, survey: SurveyOutcome) -> dict[str, int]:
    """Counts as they will be after this attempt, for every rule key it falls under."""
    key = retry_key(outcome, survey)
    bumped = {outcome.value: by_outcome.get(outcome.value, 0) + 1}
    if key is not None and key.value != outcome.value:
        bumped[key.value] = by_outcome.get(key.value, 0) + 1
    return bumped


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _ensure_guards(session: Session, phones: set[str], now: datetime) -> None:
    """Make sure every phone has its guard row (created free, never changed if it exists).

    One statement built once per dialect, run on the session's connection: on PostgreSQL an
    ``INSERT … SELECT unnest(:phones)`` (one round trip and no compilation per release; a multi-row
    VALUES list was compiled anew each time and an ORM bulk insert cost more still), on SQLite an
    executemany of the same INSERT.
    """
    if not phones:
        return
    ordered = sorted(phones)
    dialect = _dialect(session)
    if dialect == "postgresql":
        session.connection().execute(_ensure_guards_statement(dialect), {"g_phones": ordered, "g_now": now})
        return
    rows = [{"phone_hash": p, "attempts_today": 0, "updated_at": now} for p in ordered]
    session.connection().execute(_ensure_guards_statement(dialect), rows)


@lru_cache(maxsize=4)
def _ensure_guards_statement(dialect: str) -> Insert:
    guard = _GUARDS.c
    if dialect == "postgresql":
        phones = func.unnest(bindparam("g_phones", type_=postgresql.ARRAY(guard.phone_hash.type)))
        source = select(phones, literal(0, Integer), bindparam("g_now", type_=guard.updated_at.type))
        return (
            postgresql.insert(_GUARDS)
            .from_select(["phone_hash", "attempts_today", "updated_at"], source)
            .on_conflict_do_nothing(index_elements=["phone_hash"])
        )
    return sqlite.insert(_GUARDS).on_conflict_do_nothing(index_elements=["phone_hash"])


def _acquire_phone(
    session: Session, *, phone_hash: str, target_id: int, today: date, cap: int, now: datetime
) -> bool:
    """Compare-and-set on the phone's guard: free and under today's cap → held by this target, counted."""
    params = {"g_phone": phone_hash, "g_target": target_id, "g_today": today, "g_cap": cap, "g_now": now}
    result = session.connection().execute(_ACQUIRE_PHONE, params)
    return result.rowcount == 1


@dataclass(frozen=True, slots=True)
class _Schedules:
    """A claim's campaigns: rules, calendars and schedules by campaign id."""

    rules: dict[int, CallingRules]
    calendars: dict[int, CallingCalendar]
    campaigns: dict[int, CampaignSchedule]


def _take_phones(
    session: Session, ready: Sequence[_Candidate], schedules: _Schedules, *, today: date, now: datetime
) -> list[DueTarget]:
    """Hold the phones of ``ready`` (distinct phones, in claim order); the targets now holding theirs.

    A target whose phone is in another call right now is moved to the campaign's recheck time, one
    whose phone used up today's attempts to the next calling day; one whose guard another claimer
    holds this very moment stays due.
    """
    if not ready:
        return []
    caps = [schedules.rules[t.campaign_id].caps for t in ready]
    held = _acquire_phones(
        session, targets=ready, caps=[c.max_attempts_per_phone_per_day for c in caps], today=today, now=now
    )
    refused = {t.phone_hash for t in ready if t.id not in held}
    guards = _guards(session.connection(), refused) if refused else {}
    claimed: list[DueTarget] = []
    for target, cap in zip(ready, caps, strict=True):
        if target.id in held:
            claimed.append(
                DueTarget(
                    target.id,
                    target.campaign_id,
                    target.dossier_id,
                    target.agency_id,
                    target.phone_hash,
                    target.dossier_agency_id,
                    target.field_id,
                )
            )
            continue
        calendar = schedules.calendars[target.campaign_id]
        ends_at = schedules.campaigns[target.campaign_id].ends_at
        guard = guards.get(target.phone_hash)
        if guard is not None and guard.active_target_id is not None:  # in another call right now
            recheck = now + timedelta(minutes=cap.phone_busy_recheck_minutes)
            _postpone(session, target, calendar.next_open(recheck), ends_at, now)
        elif (
            guard is not None
            and guard.day == today
            and guard.attempts_today >= cap.max_attempts_per_phone_per_day
        ):
            _postpone(session, target, calendar.next_day_open(now), ends_at, now)  # today's cap
    return claimed


def _acquire_phones(
    session: Session, *, targets: Sequence[_Candidate], caps: Sequence[int], today: date, now: datetime
) -> set[int]:
    """:func:`_acquire_phone` for several targets (distinct phones); the ids of those now holding theirs.

    On PostgreSQL one ``UPDATE … FROM unnest(…)`` for all of them (a claim asked for each phone in its
    own statement: a round trip per call placed), skipping guards another claimer has locked.
    """
    if _dialect(session) != "postgresql":
        return {
            t.id
            for t, cap in zip(targets, caps, strict=True)
            if _acquire_phone(session, phone_hash=t.phone_hash, target_id=t.id, today=today, cap=cap, now=now)
        }
    params = {
        "a_phones": [t.phone_hash for t in targets],
        "a_targets": [t.id for t in targets],
        "a_caps": list(caps),
        "a_today": today,
        "a_now": now,
    }
    return set(session.connection().execute(_ACQUIRE_PHONES, params).scalars())


def _guard_takeable(phone: Any, cap: Any, today: Any) -> list[ColumnElement[bool]]:
    """The guard of ``phone`` is free and under the day's ``cap`` (the acquisition's compare-and-set)."""
    guard = _GUARDS.c
    return [
        guard.phone_hash == phone,
        guard.active_target_id.is_(None),
        or_(guard.day.is_(None), guard.day != today, guard.attempts_today < cap),
    ]


def _guard_taken(target: Any, today: Any, now: Any) -> dict[str, Any]:
    """The guard held by ``target``, today's count one more (the old row's day decides, as SET reads it)."""
    guard = _GUARDS.c
    return {
        "active_target_id": target,
        "attempts_today": case((guard.day == today, guard.attempts_today + 1), else_=1),
        "day": today,
        "updated_at": now,
    }


def _acquire_phones_statement() -> Update:
    """PostgreSQL: the guard's compare-and-set for arrays of phones, targets and caps zipped row by
    row, skipping a guard another claimer is changing instead of waiting for it (no queueing, and no
    deadlock between claimers that meet the same phones in another order); returns the targets that
    now hold their phone."""
    guard = _GUARDS.c
    phones = bindparam("a_phones", type_=postgresql.ARRAY(guard.phone_hash.type))
    wanted = (
        func.unnest(
            phones,
            bindparam("a_targets", type_=postgresql.ARRAY(_TARGETS.c.id.type)),
            bindparam("a_caps", type_=postgresql.ARRAY(Integer)),
        )
        .table_valued("phone_hash", "target_id", "cap")
        .render_derived(name="wanted")
    )
    unlocked = (
        select(guard.phone_hash).where(guard.phone_hash == func.any(phones)).with_for_update(skip_locked=True)
    )
    today: Any = bindparam("a_today")
    now: Any = bindparam("a_now")
    return (
        update(_GUARDS)
        .where(
            *_guard_takeable(wanted.c.phone_hash, wanted.c.cap, today),
            guard.phone_hash.in_(unlocked.scalar_subquery()),
        )
        .values(**_guard_taken(wanted.c.target_id, today, now))
        .returning(guard.active_target_id)
    )


_ACQUIRE_PHONES = _acquire_phones_statement()


def _guards(connection: Connection, phones: set[str]) -> dict[str, Any]:
    """The guard rows of ``phones`` as they are now (why a phone was refused)."""
    rows = connection.execute(
        _claim_lookups(connection.dialect.name).guards_of, {"gs_phones": sorted(phones)}
    )
    return {row.phone_hash: row for row in rows}


# One guard at a time (SQLite, a single writer: nothing to skip); PostgreSQL takes a claim's phones
# together (_ACQUIRE_PHONES).
_ACQUIRE_PHONE = (
    update(_GUARDS)
    .where(*_guard_takeable(bindparam("g_phone"), bindparam("g_cap"), bindparam("g_today")))
    .values(**_guard_taken(bindparam("g_target"), bindparam("g_today"), bindparam("g_now")))
)


def _release_phone(
    session: Session, *, phone_hash: str, target_id: int, now: datetime, uncount: bool
) -> None:
    params = {"g_phone": phone_hash, "g_target": target_id, "g_now": now}
    session.connection().execute(_release_phone_statement(uncount), params)


@lru_cache(maxsize=2)
def _release_phone_statement(uncount: bool) -> Update:
    guard = _GUARDS.c
    values: dict[str, Any] = {"active_target_id": None, "updated_at": bindparam("g_now")}
    if uncount:
        # The attempt never happened: give today's count back (never below zero).
        values["attempts_today"] = case((guard.attempts_today > 0, guard.attempts_today - 1), else_=0)
    return (
        update(_GUARDS)
        .where(guard.phone_hash == bindparam("g_phone"), guard.active_target_id == bindparam("g_target"))
        .values(**values)
    )


def _postpone(
    session: Session, target: _Candidate, when: datetime | None, ends_at: datetime, now: datetime
) -> None:
    if when is None or when >= ends_at:
        _close(session, target, TargetState.SKIPPED, now)
        return
    session.execute(
        update(CallTarget)
        .where(CallTarget.id == target.id, CallTarget.state == TargetState.QUEUED.value)
        .values(next_attempt_at=when, updated_at=now)
        .execution_options(synchronize_session=False)
    )


class _Candidate(NamedTuple):
    """A due target as a claim sees it, with the phone its dossier has now."""

    id: int
    campaign_id: int
    dossier_id: int
    agency_id: int
    phone_hash: str
    dossier_agency_id: int
    field_id: int


@lru_cache(maxsize=4)
def _candidates_statement(dialect: str) -> Select[Any]:
    """A claim's due targets with their dossier's current phone and placement, built once per dialect."""
    col = _TARGETS.c
    query = (
        select(
            col.id,
            col.campaign_id,
            col.dossier_id,
            col.agency_id,
            col.phone_hash,
            _DOSSIERS.c.phone_hash,
            _DOSSIERS.c.agency_id,
            _DOSSIERS.c.field_id,
        )
        .join(_DOSSIERS, _DOSSIERS.c.id == col.dossier_id)
        .where(
            col.state == TargetState.QUEUED.value,
            col.next_attempt_at <= bindparam("q_now"),
            col.campaign_id.in_(bindparam("q_running", expanding=True)),
        )
        .order_by(col.next_attempt_at, col.draw_rank, col.id)
        .limit(bindparam("q_limit"))
    )
    if dialect == "postgresql":
        # Concurrent claimers skip each other's rows instead of queueing behind them.
        query = query.with_for_update(of=_TARGETS, skip_locked=True)
    return query


_REPOINT_PHONE = (
    update(_TARGETS)
    .where(_TARGETS.c.id == bindparam("p_id"), _TARGETS.c.state == TargetState.QUEUED.value)
    .values(phone_hash=bindparam("p_phone"), updated_at=bindparam("p_now"))
)


def _current_phone(connection: Connection, row: Sequence[Any], now: datetime) -> _Candidate:
    """The candidate with its dossier's current phone; a target drawn with an older number is updated,
    so that its guard, its result and the next draw all see the number that is dialled."""
    target_id, campaign_id, dossier_id, agency_id, drawn_phone, current_phone, dossier_agency, field = row
    if current_phone != drawn_phone:
        connection.execute(_REPOINT_PHONE, {"p_id": target_id, "p_phone": current_phone, "p_now": now})
        log.info(
            "call target %s: its dossier's phone changed since the draw; the new number is checked", target_id
        )
    return _Candidate(target_id, campaign_id, dossier_id, agency_id, current_phone, dossier_agency, field)


def _close(session: Session, target: _Candidate, state: TargetState, now: datetime) -> bool:
    result = session.execute(
        update(CallTarget)
        .where(CallTarget.id == target.id, CallTarget.state == TargetState.QUEUED.value)
        .values(state=state.value, next_attempt_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def _dossiers_already_surveyed(
    connection: Connection, lookups: _ClaimLookups, dossier_ids: Sequence[int]
) -> set[int]:
    """Dossiers that completed a survey: any channel (survey_responses) or any campaign (call_targets)."""
    params = {"s_ids": sorted(set(dossier_ids))}
    done: set[int | None] = set()
    for statement in lookups.surveyed_dossiers:
        done.update(connection.execute(statement, params).scalars())
    return {d for d in done if d is not None}


def _last_phone_survey(
    connection: Connection, lookups: _ClaimLookups, phones: set[str]
) -> dict[str, datetime]:
    """The latest completed survey of each phone (any channel, any campaign)."""
    latest: dict[str, datetime] = {}
    params = {"l_phones": sorted(phones)}
    for statement in lookups.last_phone_surveys:
        for phone, when in connection.execute(statement, params):
            if phone is None or when is None:
                continue
            when = _aware(when)
            if phone not in latest or when > latest[phone]:
                latest[phone] = when
    return latest


def _aware(value: datetime | str) -> datetime:
    # An aggregate loses the column type on SQLite, which then hands back naive UTC text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
