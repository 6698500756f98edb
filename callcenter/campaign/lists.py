"""Call lists: creating a campaign with its stratified random draw, and replacement draws later.

Eligibility and populations are set-based SQL (:mod:`callcenter.campaign.eligibility`), the draw is
pure (:mod:`callcenter.campaign.sampling`), and the rows go in with one bulk ``INSERT`` per table.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, exists, func, insert, select
from sqlalchemy.orm import Session

from callcenter.campaign.calendar_store import ensure_years_seeded, holiday_days
from callcenter.campaign.eligibility import Scope, eligible_candidates, populations, submissions
from callcenter.campaign.lifecycle import ACTIVE_STATES, FINAL_STATUSES, campaign_calendar, get_campaign
from callcenter.campaign.models import (
    CallTarget,
    Campaign,
    CampaignAgencyTarget,
    CampaignEvent,
    CampaignStatus,
    Stratum,
    TargetState,
)
from callcenter.campaign.policies import (
    DaNangParams,
    PolicyKind,
    PolicyParams,
    UnitPopulation,
    compute_targets,
    parse_policy,
)
from callcenter.campaign.rules import parse_rules
from callcenter.campaign.sampling import Pick, draw, late_quota
from callcenter.campaign.schemas import CampaignSpec
from callcenter.campaign.windows import describe
from callcenter.core.clock import VN_TZ
from callcenter.core.db import refresh_planner_statistics
from callcenter.core.errors import ValidationError
from callcenter.intake.models import Agency, Field

log = logging.getLogger(__name__)


def create_campaign(session: Session, *, spec: CampaignSpec, actor: str, now: datetime) -> Campaign:
    """Validate a campaign, compute each agency's target and draw the call lists; status DRAFT.

    The input is checked first; the rest (holiday seeding, populations, the draw, the inserts) runs in
    one savepoint, so a bad spec or a policy that does not apply leaves nothing behind.
    """
    kind, params = parse_policy(spec.policy, spec.policy_params)
    rules = parse_rules(spec.calling_rules)
    if spec.returned_to < spec.returned_from:
        raise ValidationError("must not be before returned_from", field="returned_to")
    if spec.ends_at <= spec.starts_at:
        raise ValidationError("must be after starts_at", field="ends_at")
    if spec.ends_at <= now:
        raise ValidationError(f"{spec.ends_at.isoformat()} is already past", field="ends_at")
    agencies = _resolve_agencies(session, spec.agencies)
    field_ids = _resolve_fields(session, spec.fields)

    # One savepoint for every write (holiday seeding included): an error anywhere leaves nothing.
    with session.begin_nested():
        ensure_years_seeded(session, years=range(_local_year(spec.starts_at), _local_year(spec.ends_at) + 1))
        calendar = rules.calendar(holiday_days(session, start=spec.starts_at, end=spec.ends_at))
        first_open = calendar.next_open(max(spec.starts_at, now))
        if first_open is None or first_open >= spec.ends_at:
            raise ValidationError(
                f"the calling windows ({describe(calendar.windows)}) never open between starts_at and "
                "ends_at (holidays skipped)",
                field="calling_rules.windows",
            )

        scope = Scope(
            agency_ids=tuple(a.id for a in agencies),
            field_ids=tuple(field_ids) if field_ids is not None else None,
            returned_from=spec.returned_from,
            returned_to=spec.returned_to,
        )
        pops = populations(session, scope)
        needs_submitters = [a.id for a in agencies if _uses_submitter_rule(kind, params, a)]
        subs = submissions(session, scope, needs_submitters)
        units = {
            a.id: UnitPopulation(pops[a.id].population, a.organisations_only, tuple(subs.get(a.id, ())))
            for a in agencies
        }
        targets = compute_targets(kind, params, units)
        candidates = eligible_candidates(session, scope, now=now, cooloff_days=rules.caps.cooloff_days)
        seed = spec.seed if spec.seed is not None else secrets.randbits(62)

        campaign = Campaign(
            name=spec.name,
            status=CampaignStatus.DRAFT.value,
            policy=kind.value,
            policy_params=params.model_dump(mode="json"),
            returned_from=spec.returned_from,
            returned_to=spec.returned_to,
            field_ids=list(field_ids) if field_ids is not None else None,
            starts_at=spec.starts_at,
            ends_at=spec.ends_at,
            calling_rules=rules.model_dump(mode="json"),
            seed=seed,
            created_by=actor,
            created_at=now,
            updated_at=now,
        )
        session.add(campaign)
        session.flush()
        session.add(
            CampaignEvent(
                campaign_id=campaign.id,
                from_status=None,
                to_status=CampaignStatus.DRAFT.value,
                actor=actor,
                at=now,
                note="created; call lists drawn",
            )
        )
        by_agency: dict[int, list[Any]] = defaultdict(list)
        for cand in candidates:
            by_agency[cand.agency_id].append(cand)
        taken_phones: set[str] = set()
        agency_rows: list[dict[str, Any]] = []
        target_rows: list[dict[str, Any]] = []
        for agency in agencies:
            pool = by_agency.get(agency.id, [])
            n = targets[agency.id].n
            picks = draw(
                pool,
                seed=seed,
                want=n,
                late_wanted=late_quota(n, rules.late_overdue_share),
                taken_phones=taken_phones,
            )
            target_rows.extend(
                _target_rows(campaign.id, picks, first_rank=1, wave=0, due=first_open, now=now)
            )
            agency_rows.append(
                {
                    "campaign_id": campaign.id,
                    "agency_id": agency.id,
                    "population": pops[agency.id].population,
                    "population_late_overdue": pops[agency.id].population_late,
                    "eligible": len(pool),
                    "eligible_late_overdue": sum(1 for c in pool if c.late),
                    "target": n,
                    "drawn": len(picks),
                    "exhausted_at": now if len(picks) < n else None,
                }
            )
        if not target_rows:
            # A campaign that can call nobody is a mistake in its scope (dossiers returned after
            # the calling period, a year with no data, every citizen already surveyed): refused,
            # nothing kept, instead of a campaign that "runs" and ends with nothing.
            population = sum(p.population for p in pops.values())
            raise ValidationError(
                f"nothing to call: {population} dossier(s) returned between {spec.returned_from} and "
                f"{spec.returned_to} for the chosen agencies and fields, {len(candidates)} of them "
                "eligible (not yet surveyed, not opted out, not in cool-off)",
                field="returned_from",
            )
        if agency_rows:
            session.execute(insert(CampaignAgencyTarget), agency_rows)
        if target_rows:
            session.execute(insert(CallTarget), target_rows)
            # The dialer claims from this table several times a second from now on.
            refresh_planner_statistics(session, CallTarget.__tablename__)
    log.info(
        "campaign %s created by %s: %d agencies, %d targets drawn",
        campaign.id,
        actor,
        len(agency_rows),
        len(target_rows),
    )
    return campaign


def _local_year(value: datetime) -> int:
    return value.astimezone(VN_TZ).year


def _uses_submitter_rule(kind: PolicyKind, params: PolicyParams, agency: Agency) -> bool:
    if kind == PolicyKind.REPEATED_SUBMITTER:
        return True
    return (
        kind == PolicyKind.DANANG_2223
        and isinstance(params, DaNangParams)
        and params.organisations_only_rule
        and agency.organisations_only
    )


def _target_rows(
    campaign_id: int, picks: Sequence[Pick], *, first_rank: int, wave: int, due: datetime, now: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "campaign_id": campaign_id,
            "dossier_id": pick.dossier_id,
            "agency_id": pick.agency_id,
            "phone_hash": pick.phone_hash,
            "stratum": pick.stratum.value,
            "draw_rank": first_rank + index,
            "wave": wave,
            "state": TargetState.QUEUED.value,
            "attempts": 0,
            "attempts_by_outcome": {},
            "next_attempt_at": due,
            "updated_at": now,
        }
        for index, pick in enumerate(picks)
    ]


def _resolve_agencies(session: Session, codes: Sequence[str] | None) -> list[Agency]:
    if codes is None:
        agencies = list(session.scalars(select(Agency).order_by(Agency.id)))
        if not agencies:
            raise ValidationError("no agency is known yet: import dossiers first", field="agencies")
        return agencies
    if not codes:
        raise ValidationError(
            "an empty list selects nothing (omit it to take every agency)", field="agencies"
        )
    found = {a.code: a for a in session.scalars(select(Agency).where(Agency.code.in_(codes)))}
    unknown = [code for code in codes if code not in found]
    if unknown:
        raise ValidationError(f"unknown agency code(s): {', '.join(unknown)}", field="agencies")
    return sorted({a.id: a for a in found.values()}.values(), key=lambda a: a.id)


def _resolve_fields(session: Session, codes: Sequence[str] | None) -> list[int] | None:
    if codes is None:
        return None
    if not codes:
        raise ValidationError("an empty list selects nothing (omit it to take every field)", field="fields")
    found = {
        code: id_ for code, id_ in session.execute(select(Field.code, Field.id).where(Field.code.in_(codes)))
    }
    unknown = [code for code in codes if code not in found]
    if unknown:
        raise ValidationError(f"unknown field code(s): {', '.join(unknown)}", field="fields")
    return sorted(set(found.values()))


_AGENCY_TARGETS: Table = CampaignAgencyTarget.__table__  # type: ignore[assignment]
_AGENCY_EXHAUSTED_AT = select(_AGENCY_TARGETS.c.exhausted_at).where(
    _AGENCY_TARGETS.c.campaign_id == bindparam("x_campaign"),
    _AGENCY_TARGETS.c.agency_id == bindparam("x_agency"),
)
# True when :func:`replenish` has nothing to do for the agency: its list is exhausted (and stays so)
# or it has none. Read inside a caller's own statement (the PostgreSQL result of a call, see
# ``campaign.service``), it saves replenish its first read.
AGENCY_LIST_CLOSED = ~exists().where(
    _AGENCY_TARGETS.c.campaign_id == bindparam("x_campaign"),
    _AGENCY_TARGETS.c.agency_id == bindparam("x_agency"),
    _AGENCY_TARGETS.c.exhausted_at.is_(None),
)


def replenish(
    session: Session, *, campaign_id: int, agency_id: int, now: datetime, status: str | None = None
) -> int:
    """Top an agency's list up after targets ended without a survey; mark it exhausted when nobody is left.

    The list of an agency always holds ``target − completed`` live targets when it can, keeping the
    late/overdue stratum at its share. Returns how many dossiers were drawn. ``status``: the
    campaign's status as the caller read it in this transaction (the campaign is then loaded only
    when dossiers are drawn).
    """
    if status is None:
        status = get_campaign(session, campaign_id=campaign_id).status
    if CampaignStatus(status) in FINAL_STATUSES:
        return 0
    # An exhausted agency stays exhausted: no lock and no ORM work for it (the trunk owner asks after
    # every call that ends without a survey). Flushed first, as the ORM query would autoflush.
    session.flush()
    exhausted = (
        session.connection()
        .execute(_AGENCY_EXHAUSTED_AT, {"x_campaign": campaign_id, "x_agency": agency_id})
        .one_or_none()
    )
    if exhausted is None or exhausted[0] is not None:
        return 0
    # Locking the agency's row serialises concurrent top-ups of one agency (PostgreSQL; SQLite has a
    # single writer anyway), so two workers never draw the same replacement.
    row = session.scalar(
        select(CampaignAgencyTarget)
        .where(CampaignAgencyTarget.campaign_id == campaign_id, CampaignAgencyTarget.agency_id == agency_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None or row.exhausted_at is not None:
        return 0
    counts = session.execute(
        select(CallTarget.stratum, CallTarget.state, func.count())
        .where(CallTarget.campaign_id == campaign_id, CallTarget.agency_id == agency_id)
        .group_by(CallTarget.stratum, CallTarget.state)
    ).all()
    covered = sum(c for _, state, c in counts if state in (*ACTIVE_STATES, TargetState.COMPLETED.value))
    late_covered = sum(
        c
        for stratum, state, c in counts
        if stratum == Stratum.LATE_OVERDUE.value and state in (*ACTIVE_STATES, TargetState.COMPLETED.value)
    )
    deficit = row.target - covered
    if deficit <= 0:
        return 0
    campaign = get_campaign(session, campaign_id=campaign_id)
    rules = parse_rules(campaign.calling_rules)
    scope = Scope(
        (agency_id,),
        tuple(campaign.field_ids) if campaign.field_ids is not None else None,
        campaign.returned_from,
        campaign.returned_to,
    )
    pool = eligible_candidates(
        session,
        scope,
        now=now,
        cooloff_days=rules.caps.cooloff_days,
        agency_ids=(agency_id,),
        exclude_campaign_id=campaign_id,
    )
    late_wanted = max(0, late_quota(row.target, rules.late_overdue_share) - late_covered)
    picks = draw(pool, seed=campaign.seed, want=deficit, late_wanted=late_wanted, taken_phones=set())
    if picks:
        last_rank, last_wave = session.execute(
            select(func.max(CallTarget.draw_rank), func.max(CallTarget.wave)).where(
                CallTarget.campaign_id == campaign_id, CallTarget.agency_id == agency_id
            )
        ).one()
        due = campaign_calendar(session, campaign, rules).next_open(max(now, campaign.starts_at)) or now
        session.execute(
            insert(CallTarget),
            _target_rows(
                campaign_id,
                picks,
                first_rank=(last_rank or 0) + 1,
                wave=(last_wave or 0) + 1,
                due=due,
                now=now,
            ),
        )
    row.drawn += len(picks)
    if len(picks) < deficit:
        row.exhausted_at = now
    session.flush()
    return len(picks)
