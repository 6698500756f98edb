"""The campaign lifecycle: draft → scheduled → running ⇄ paused → completed / cancelled.

Each change is a compare-and-set ``UPDATE`` of ``campaigns.status`` plus a ``campaign_events`` row
saying who made it and when. Services take a session and never commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Exists, ScalarSelect, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session

from callcenter.campaign.calendar_store import holiday_days
from callcenter.campaign.errors import CampaignNotFound, InvalidTransition
from callcenter.campaign.models import CallTarget, Campaign, CampaignEvent, CampaignStatus, TargetState
from callcenter.campaign.rules import CallingRules, parse_rules
from callcenter.campaign.windows import CallingCalendar
from callcenter.core.db import sql_constant

SYSTEM_ACTOR = "system"

# The campaign lifecycle, in one place.
TRANSITIONS: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    CampaignStatus.DRAFT: frozenset({CampaignStatus.SCHEDULED, CampaignStatus.CANCELLED}),
    CampaignStatus.SCHEDULED: frozenset({CampaignStatus.RUNNING, CampaignStatus.CANCELLED}),
    CampaignStatus.RUNNING: frozenset(
        {CampaignStatus.PAUSED, CampaignStatus.COMPLETED, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.PAUSED: frozenset(
        {CampaignStatus.RUNNING, CampaignStatus.COMPLETED, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.COMPLETED: frozenset(),
    CampaignStatus.CANCELLED: frozenset(),
}
FINAL_STATUSES = frozenset({CampaignStatus.COMPLETED, CampaignStatus.CANCELLED})
ACTIVE_STATES = (TargetState.QUEUED.value, TargetState.IN_CALL.value)


def _first_target_in(state: TargetState) -> ScalarSelect[int]:
    # The state and the limit are written into the statement, not bound: with them as parameters
    # PostgreSQL could not trust a generic plan and planned the statement anew on every call result
    # (planning cost more than running it); now only the campaign varies and the plan is reused.
    return (
        select(CallTarget.id)
        .where(
            CallTarget.campaign_id == bindparam("live_campaign"),
            CallTarget.state == sql_constant(state.value),
        )
        .order_by(CallTarget.id)
        .limit(sql_constant(1))
        .scalar_subquery()
    )


# One target of the campaign still in a call, else one still queued; NULL when none is left.
#
# It runs after every call result. ``LIMIT 1`` over ``state IN (queued, in_call)`` let PostgreSQL
# pick a sequential scan (the campaign's targets are mostly "live" by the statistics taken when it was
# drawn) that walked every completed target first: 0.24 ms per result at 3,000 targets, 14 ms at
# 90,000 — the dialer's PostgreSQL cost per call grew with the campaign. Each state is now one ordered
# lookup in ``ix_call_targets_campaign_state``; targets in a call (at most one per channel, and nearly
# always some) are looked up first, so the queued lookup runs only when no call is up.
ANY_LIVE_TARGET = select(
    func.coalesce(_first_target_in(TargetState.IN_CALL), _first_target_in(TargetState.QUEUED))
)


def _other_target_in(state: TargetState) -> Exists:
    return exists().where(
        CallTarget.campaign_id == bindparam("live_campaign"),
        CallTarget.state == sql_constant(state.value),
        CallTarget.id != bindparam("live_target"),
    )


# True when a target of the campaign other than ``live_target`` is still queued or in a call: read
# inside the statement that records a call's result (its own target, moved by that statement, is
# still IN_CALL in the statement's snapshot, hence excluded), it tells that result's
# ``complete_if_done`` it has nothing to check. The same ordered lookups as ANY_LIVE_TARGET.
OTHER_LIVE_TARGET = or_(_other_target_in(TargetState.IN_CALL), _other_target_in(TargetState.QUEUED))


def get_campaign(session: Session, *, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignNotFound(f"campaign {campaign_id} does not exist")
    return campaign


class _Scheduled(Protocol):
    """What a calendar needs of a campaign (an ORM campaign, or the few columns read by Core)."""

    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime: ...
    @property
    def calling_rules(self) -> dict[str, Any]: ...


def campaign_calendar(
    session: Session, campaign: _Scheduled, rules: CallingRules | None = None
) -> CallingCalendar:
    """The campaign's windows with the holiday calendar of its calling period."""
    rules = rules or parse_rules(campaign.calling_rules)
    return rules.calendar(holiday_days(session, start=campaign.starts_at, end=campaign.ends_at))


# ---------------------------------------------------------------------------------------------------
# Lifecycle
# ---------------------------------------------------------------------------------------------------


def transition(
    session: Session,
    *,
    campaign_id: int,
    to: CampaignStatus,
    actor: str,
    now: datetime,
    note: str | None = None,
    only_from: frozenset[CampaignStatus] | None = None,
) -> Campaign:
    """Move a campaign along its lifecycle by compare-and-set, recording who did it and when.

    ``only_from`` narrows the allowed starting states for an operator's verb (resume = from paused).
    """
    campaign = get_campaign(session, campaign_id=campaign_id)
    current = CampaignStatus(campaign.status)
    if only_from is not None and current not in only_from:
        expected = " or ".join(sorted(s.value for s in only_from))
        raise InvalidTransition(f"campaign {campaign_id} is {current.value}; this needs it to be {expected}")
    if to not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none: it is final"
        raise InvalidTransition(
            f"campaign {campaign_id} is {current.value}; it cannot become {to.value} (allowed: {allowed})"
        )
    result = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == current.value)
        .values(status=to.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidTransition(f"campaign {campaign_id} changed status meanwhile; try again")
    session.add(
        CampaignEvent(
            campaign_id=campaign_id,
            from_status=current.value,
            to_status=to.value,
            actor=actor,
            at=now,
            note=note,
        )
    )
    if to in FINAL_STATUSES:
        # Nothing more will be called; calls in progress still report their result.
        session.execute(
            update(CallTarget)
            .where(CallTarget.campaign_id == campaign_id, CallTarget.state == TargetState.QUEUED.value)
            .values(state=TargetState.SKIPPED.value, next_attempt_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    session.flush()
    session.refresh(campaign)
    return campaign


def start_campaign(session: Session, *, campaign_id: int, actor: str, now: datetime) -> Campaign:
    """DRAFT → SCHEDULED, and on to RUNNING at once if the start time has come."""
    campaign = transition(session, campaign_id=campaign_id, to=CampaignStatus.SCHEDULED, actor=actor, now=now)
    if campaign.starts_at <= now:
        campaign = transition(
            session,
            campaign_id=campaign_id,
            to=CampaignStatus.RUNNING,
            actor=actor,
            now=now,
            note="start time reached",
        )
    return campaign


def pause_campaign(
    session: Session, *, campaign_id: int, actor: str, now: datetime, note: str | None = None
) -> Campaign:
    return transition(
        session, campaign_id=campaign_id, to=CampaignStatus.PAUSED, actor=actor, now=now, note=note
    )


def resume_campaign(
    session: Session, *, campaign_id: int, actor: str, now: datetime, note: str | None = None
) -> Campaign:
    return transition(
        session,
        campaign_id=campaign_id,
        to=CampaignStatus.RUNNING,
        actor=actor,
        now=now,
        note=note,
        only_from=frozenset({CampaignStatus.PAUSED}),
    )


def stop_campaign(
    session: Session, *, campaign_id: int, actor: str, now: datetime, note: str | None = None
) -> Campaign:
    """Cancel a campaign: queued calls are dropped, calls in progress finish."""
    return transition(
        session, campaign_id=campaign_id, to=CampaignStatus.CANCELLED, actor=actor, now=now, note=note
    )


def tick(session: Session, *, now: datetime) -> dict[str, int]:
    """Periodic housekeeping: start scheduled campaigns whose time came, complete those past their end
    and running ones with nothing left to call.

    The last check also runs after each call result, but when the last two calls of a campaign end
    at the same moment in two transactions, each still sees the other's target in a call and
    neither completes the campaign; this sweep does (one index probe per running campaign).
    """
    started = completed = 0
    due = session.scalars(
        select(Campaign.id).where(
            Campaign.status == CampaignStatus.SCHEDULED.value, Campaign.starts_at <= now
        )
    ).all()
    for campaign_id in due:
        transition(
            session,
            campaign_id=campaign_id,
            to=CampaignStatus.RUNNING,
            actor=SYSTEM_ACTOR,
            now=now,
            note="start time reached",
        )
        started += 1
    ended = session.scalars(
        select(Campaign.id).where(
            Campaign.status.in_((CampaignStatus.RUNNING.value, CampaignStatus.PAUSED.value)),
            Campaign.ends_at <= now,
        )
    ).all()
    for campaign_id in ended:
        transition(
            session,
            campaign_id=campaign_id,
            to=CampaignStatus.COMPLETED,
            actor=SYSTEM_ACTOR,
            now=now,
            note="end time reached",
        )
        completed += 1
    running = session.scalars(
        select(Campaign.id).where(Campaign.status == CampaignStatus.RUNNING.value)
    ).all()
    for campaign_id in running:
        completed += complete_if_done(
            session, campaign_id=campaign_id, now=now, status=CampaignStatus.RUNNING.value
        )
    return {"started": started, "completed": completed}


def list_campaigns(session: Session, *, status: CampaignStatus | None = None) -> list[Campaign]:
    query = select(Campaign).order_by(Campaign.id.desc())
    if status is not None:
        query = query.where(Campaign.status == status.value)
    return list(session.scalars(query))


def campaign_events(session: Session, *, campaign_id: int) -> list[CampaignEvent]:
    get_campaign(session, campaign_id=campaign_id)
    return list(
        session.scalars(
            select(CampaignEvent).where(CampaignEvent.campaign_id == campaign_id).order_by(CampaignEvent.id)
        )
    )


def complete_if_done(session: Session, *, campaign_id: int, now: datetime, status: str | None = None) -> bool:
    """A running campaign with nothing left to call is complete (targets met or eligible exhausted).

    ``status``: the campaign's status as the caller read it in this transaction (saves a load).
    True when this call completed it."""
    if status is None:
        status = get_campaign(session, campaign_id=campaign_id).status
    if status != CampaignStatus.RUNNING.value:
        return False
    # Core execution on the session's connection (the ORM path cost three times the lookup itself);
    # flushed first, as the ORM path would autoflush: targets drawn in this transaction count.
    session.flush()
    if session.connection().execute(ANY_LIVE_TARGET, {"live_campaign": campaign_id}).scalar() is None:
        transition(
            session,
            campaign_id=campaign_id,
            to=CampaignStatus.COMPLETED,
            actor=SYSTEM_ACTOR,
            now=now,
            note="every agency reached its target or ran out of eligible dossiers",
        )
        return True
    return False
