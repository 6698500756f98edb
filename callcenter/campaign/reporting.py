"""A campaign's progress per agency: target, completed, in progress, attempts by outcome, and an ETA.

The ETA assumes the completion rate of the last seven days (per hour of *calling time*, so nights,
weekends and holidays neither slow the rate down nor count as working time) continues.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.campaign.lifecycle import ACTIVE_STATES, campaign_calendar, get_campaign
from callcenter.campaign.models import CallTarget, Campaign, CampaignAgencyTarget, Stratum, TargetState
from callcenter.core.outcomes import CallOutcome
from callcenter.intake.models import Agency

RATE_LOOKBACK = timedelta(days=7)
CALL_OUTCOMES = frozenset(o.value for o in CallOutcome)


@dataclass
class AgencyProgress:
    agency_id: int
    agency_code: str
    agency_name: str
    population: int
    population_late_overdue: int
    eligible: int
    eligible_late_overdue: int
    target: int
    drawn: int
    completed: int = 0
    completed_late_overdue: int = 0
    in_progress: int = 0
    queued: int = 0
    ended_without_survey: int = 0
    attempts: int = 0
    attempts_by_outcome: dict[str, int] = field(default_factory=dict)
    exhausted_at: datetime | None = None
    eta: datetime | None = None
    note: str = ""


@dataclass
class CampaignReport:
    campaign: Campaign
    agencies: list[AgencyProgress]
    target: int
    completed: int
    in_progress: int
    completion_rate_per_open_hour: float
    eta: datetime | None
    note: str


def campaign_report(session: Session, *, campaign_id: int, now: datetime) -> CampaignReport:
    """Progress of one campaign, per agency and in total, with the estimated time to finish."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    calendar = campaign_calendar(session, campaign)
    rows = session.execute(
        select(CampaignAgencyTarget, Agency.code, Agency.name)
        .join(Agency, Agency.id == CampaignAgencyTarget.agency_id)
        .where(CampaignAgencyTarget.campaign_id == campaign_id)
        .order_by(Agency.code)
    ).all()
    progress = {
        row.agency_id: AgencyProgress(
            agency_id=row.agency_id,
            agency_code=code,
            agency_name=name,
            population=row.population,
            population_late_overdue=row.population_late_overdue,
            eligible=row.eligible,
            eligible_late_overdue=row.eligible_late_overdue,
            target=row.target,
            drawn=row.drawn,
            exhausted_at=row.exhausted_at,
        )
        for row, code, name in rows
    }
    counts = session.execute(
        select(
            CallTarget.agency_id,
            CallTarget.state,
            CallTarget.stratum,
            func.count(),
            func.sum(CallTarget.attempts),
        )
        .where(CallTarget.campaign_id == campaign_id)
        .group_by(CallTarget.agency_id, CallTarget.state, CallTarget.stratum)
    )
    for agency_id, state, stratum, count, attempts in counts:
        p = progress[agency_id]
        p.attempts += int(attempts or 0)
        if state == TargetState.COMPLETED.value:
            p.completed += count
            if stratum == Stratum.LATE_OVERDUE.value:
                p.completed_late_overdue += count
        elif state == TargetState.IN_CALL.value:
            p.in_progress += count
        elif state == TargetState.QUEUED.value:
            p.queued += count
        else:
            p.ended_without_survey += count
    by_outcome: dict[int, Counter[str]] = defaultdict(Counter)
    for agency_id, outcomes in session.execute(
        select(CallTarget.agency_id, CallTarget.attempts_by_outcome).where(
            CallTarget.campaign_id == campaign_id, CallTarget.attempts > 0
        )
    ):
        # attempts_by_outcome also counts retry classes (partial, no_input); show the network outcomes
        by_outcome[agency_id].update({k: v for k, v in (outcomes or {}).items() if k in CALL_OUTCOMES})
    since = max(campaign.starts_at, now - RATE_LOOKBACK)
    recent = dict(
        session.execute(  # type: ignore[arg-type]
            select(CallTarget.agency_id, func.count())
            .where(
                CallTarget.campaign_id == campaign_id,
                CallTarget.state == TargetState.COMPLETED.value,
                CallTarget.completed_at >= since,
            )
            .group_by(CallTarget.agency_id)
        ).all()
    )
    open_hours = calendar.open_seconds_between(since, now) / 3600

    def eta_for(remaining: int, recent_done: int) -> datetime | None:
        if remaining <= 0 or recent_done <= 0 or open_hours <= 0:
            return None
        return calendar.after_open_seconds(now, remaining / (recent_done / open_hours) * 3600)

    for agency_id, p in progress.items():
        p.attempts_by_outcome = dict(sorted(by_outcome[agency_id].items()))
        remaining = p.target - p.completed
        live = p.in_progress + p.queued
        if remaining <= 0:
            p.note = "target met"
        elif p.exhausted_at is not None and live == 0:
            p.note = f"eligible dossiers exhausted: {remaining} short of the target"
        else:
            p.eta = eta_for(remaining, recent.get(agency_id, 0))
            if p.exhausted_at is not None:
                p.note = "no replacement left: the target is met only if the remaining calls succeed"
            elif p.eta is None:
                p.note = "no completed survey yet: no rate to estimate from"
            elif p.eta > campaign.ends_at:
                p.note = "at the current rate the target is not met before the campaign ends"
    target = sum(p.target for p in progress.values())
    completed = sum(min(p.completed, p.target) for p in progress.values())
    recent_total = sum(recent.values())
    rate = recent_total / open_hours if open_hours > 0 else 0.0
    live_total = session.scalar(
        select(func.count()).where(CallTarget.campaign_id == campaign_id, CallTarget.state.in_(ACTIVE_STATES))
    )
    eta = eta_for(target - completed, recent_total)
    if target - completed <= 0:
        note = "every target met"
    elif not live_total:
        note = "nothing left to call"
    elif eta is None:
        note = "no completed survey in the last seven days: no ETA"
    else:
        note = "ETA after the campaign's end" if eta > campaign.ends_at else ""
    return CampaignReport(
        campaign=campaign,
        agencies=list(progress.values()),
        target=target,
        completed=completed,
        in_progress=sum(p.in_progress for p in progress.values()),
        completion_rate_per_open_hour=round(rate, 3),
        eta=eta,
        note=note,
    )
