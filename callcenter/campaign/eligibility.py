"""Who may be surveyed: set-based SQL over dossiers, opt-outs, survey responses and earlier call lists.

Eligible means: the result was returned within the campaign's period, the dossier has a callable phone,
the phone is not on the opt-out list, the dossier never completed a survey (any channel, any campaign),
and the phone did not complete a survey within the cool-off.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.orm import Session

from callcenter.campaign.models import CallTarget, TargetState
from callcenter.campaign.policies import Submission
from callcenter.campaign.sampling import Candidate
from callcenter.core.clock import VN_TZ
from callcenter.core.models import OptOut
from callcenter.intake.models import Dossier, DossierStatus, Timeliness
from callcenter.ivr.models import ResponseStatus, SurveyResponse

LATE_VALUES = (Timeliness.LATE.value, Timeliness.OVERDUE.value)
CALLABLE_KINDS = ("mobile", "landline")


@dataclass(frozen=True)
class Scope:
    agency_ids: tuple[int, ...]
    field_ids: tuple[int, ...] | None  # None: every field
    returned_from: date  # local dates, both inclusive
    returned_to: date

    def bounds(self) -> tuple[datetime, datetime]:
        """The period as aware instants: local midnight of the first day to local midnight after the last."""
        start = datetime.combine(self.returned_from, time(0), VN_TZ)
        end = datetime.combine(self.returned_to + timedelta(days=1), time(0), VN_TZ)
        return start, end


@dataclass
class AgencyPopulation:
    population: int = 0
    population_late: int = 0


def _in_scope(scope: Scope, agency_ids: Sequence[int] | None = None) -> ColumnElement[bool]:
    start, end = scope.bounds()
    clauses = [
        Dossier.agency_id.in_(agency_ids if agency_ids is not None else scope.agency_ids),
        Dossier.status == DossierStatus.RETURNED.value,
        Dossier.returned_at >= start,
        Dossier.returned_at < end,
    ]
    if scope.field_ids is not None:
        clauses.append(Dossier.field_id.in_(scope.field_ids))
    return and_(*clauses)


def eligible_clause(*, now: datetime, cooloff_days: int) -> ColumnElement[bool]:
    """The eligibility test of one dossier row (correlated NOT EXISTS; planned as anti-joins)."""
    cutoff = now - timedelta(days=cooloff_days)
    completed = ResponseStatus.COMPLETED.value
    return and_(
        Dossier.phone_hash != "",
        Dossier.phone_kind.in_(CALLABLE_KINDS),
        ~exists().where(OptOut.phone_hash == Dossier.phone_hash),
        ~exists().where(SurveyResponse.dossier_id == Dossier.id, SurveyResponse.status == completed),
        ~exists().where(CallTarget.dossier_id == Dossier.id, CallTarget.state == TargetState.COMPLETED.value),
        ~exists().where(
            SurveyResponse.phone_hash == Dossier.phone_hash,
            SurveyResponse.status == completed,
            SurveyResponse.completed_at >= cutoff,
        ),
        ~exists().where(
            CallTarget.phone_hash == Dossier.phone_hash,
            CallTarget.state == TargetState.COMPLETED.value,
            CallTarget.completed_at >= cutoff,
        ),
    )


def populations(session: Session, scope: Scope) -> dict[int, AgencyPopulation]:
    """N per agency (every returned dossier in scope, callable or not), and how many were late/overdue."""
    late = func.sum(case((Dossier.timeliness.in_(LATE_VALUES), 1), else_=0))
    rows = session.execute(
        select(Dossier.agency_id, func.count(), late).where(_in_scope(scope)).group_by(Dossier.agency_id)
    )
    result = {agency_id: AgencyPopulation() for agency_id in scope.agency_ids}
    for agency_id, count, late_count in rows:
        result[agency_id] = AgencyPopulation(int(count), int(late_count or 0))
    return result


def submissions(session: Session, scope: Scope, agency_ids: Sequence[int]) -> dict[int, list[Submission]]:
    """Per agency, (submitter, local return day) of each dossier: input of the repeated-submitter rule."""
    result: dict[int, list[Submission]] = defaultdict(list)
    if not agency_ids:
        return result
    rows = session.execute(
        select(Dossier.agency_id, Dossier.phone_hash, Dossier.returned_at).where(_in_scope(scope, agency_ids))
    )
    for agency_id, phone_hash, returned_at in rows:
        assert returned_at is not None  # in scope means returned
        result[agency_id].append(Submission(phone_hash, returned_at.astimezone(VN_TZ).date()))
    return result


def eligible_candidates(
    session: Session,
    scope: Scope,
    *,
    now: datetime,
    cooloff_days: int,
    agency_ids: Sequence[int] | None = None,
    exclude_campaign_id: int | None = None,
) -> list[Candidate]:
    """Eligible dossiers in scope; with ``exclude_campaign_id``, none already on that campaign's list,
    nor any whose phone is (a replacement never calls a number twice in one campaign)."""
    query = select(Dossier.id, Dossier.agency_id, Dossier.phone_hash, Dossier.timeliness).where(
        _in_scope(scope, agency_ids), eligible_clause(now=now, cooloff_days=cooloff_days)
    )
    if exclude_campaign_id is not None:
        # two NOT EXISTS rather than one with OR: each is answered by an index
        query = query.where(
            ~exists().where(
                CallTarget.campaign_id == exclude_campaign_id, CallTarget.dossier_id == Dossier.id
            ),
            ~exists().where(
                CallTarget.campaign_id == exclude_campaign_id, CallTarget.phone_hash == Dossier.phone_hash
            ),
        )
    return [
        Candidate(dossier_id, agency_id, phone_hash, timeliness in LATE_VALUES)
        for dossier_id, agency_id, phone_hash, timeliness in session.execute(query)
    ]
