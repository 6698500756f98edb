"""Survey figures per agency, field, period and channel, aggregated in the database.

Every count comes from a SQL ``GROUP BY`` (SQLAlchemy Core); Python only rolls the few resulting
cells up into rows and applies :mod:`callcenter.analysis.stats`. What is counted, and when:

* **eligible** — dossiers returned to the submitter in the period (``dossiers.returned_at``), split
  into the on-time and the late/overdue stratum by ``dossiers.timeliness``;
* **called** / **reached** — distinct dossiers with a finished call attempt created in the period /
  one that a person picked up (outcome ``answered`` or ``dropped``); the call channel only;
* **completed** — survey responses with status ``completed`` answered in the period
  (``survey_responses.answered_at``); **rated** — responses with a satisfaction answer (completed or
  partial), the denominator of the satisfied rate; answers are split into strata by the dossier's
  timeliness copied onto the response when it was created (``survey_responses.dossier_timeliness``);
* **reasons** — among unsatisfied answers, how many named each reason (several may be named, so the
  shares add up to more than 100 %).

Rates: response = completed (call) / called; contact = reached / called; completion = completed
(call) / reached. Periods are calendar months, quarters and years in Asia/Ho_Chi_Minh.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement

from callcenter.analysis import stats
from callcenter.analysis.periods import Period, PeriodKind, month_key_to_period
from callcenter.analysis.sqlfuncs import month_bucket
from callcenter.campaign import policies
from callcenter.core.errors import ValidationError
from callcenter.core.outcomes import CallOutcome
from callcenter.core.pii import PiiCipher, mask_digit_runs
from callcenter.dialer.models import CallAttempt
from callcenter.intake.models import Agency, Dossier, DossierStatus, Field, Timeliness
from callcenter.ivr.models import ResponseChannel, ResponseReason, ResponseStatus, SurveyResponse

DIMENSIONS = ("agency", "field", "channel")
LATE_OVERDUE = "late_overdue"
ON_TIME = "on_time"
UNKNOWN = "unknown"  # a response with no dossier (web, paper): no stratum, left out of the weighting
REACHED_OUTCOMES = (CallOutcome.ANSWERED.value, CallOutcome.DROPPED.value)
RATED_STATUSES = (ResponseStatus.COMPLETED.value, ResponseStatus.PARTIAL.value)


# --- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupKey:
    agency_id: int | None = None
    field_id: int | None = None
    channel: str | None = None


@dataclass(frozen=True)
class ReasonFigure:
    code: int
    count: int
    share: float | None  # of the unsatisfied answers


@dataclass(frozen=True)
class Comparison:
    period: Period
    rated: int
    satisfied_rate: float | None
    change: float | None  # current rate minus this one (percentage points as a fraction)


@dataclass(frozen=True)
class Figures:
    eligible: int
    eligible_late_overdue: int
    called: int
    reached: int
    attempts: int
    completed: int
    completed_call: int
    rated: int
    satisfied: int
    satisfied_rate: float | None
    satisfied_interval: stats.Interval | None
    response_rate: float | None
    contact_rate: float | None
    completion_rate: float | None
    on_time_rate: float | None
    late_overdue_rate: float | None
    rated_on_time: int
    rated_late_overdue: int
    weighted: stats.WeightedEstimate | None
    reasons: tuple[ReasonFigure, ...]
    required_minimum: int | None
    attainment: float | None
    previous: Comparison | None = None
    last_year: Comparison | None = None

    @property
    def unsatisfied(self) -> int:
        return self.rated - self.satisfied


@dataclass(frozen=True)
class SummaryRow:
    key: GroupKey
    agency_code: str | None
    agency_name: str | None
    field_code: str | None
    field_name: str | None
    figures: Figures


@dataclass(frozen=True)
class Summary:
    period: Period
    group_by: tuple[str, ...]
    agency_id: int | None
    field_id: int | None
    channel: str | None
    policy: str
    rows: tuple[SummaryRow, ...]
    total: Figures


@dataclass(frozen=True)
class TrendPoint:
    month: Period
    agency_id: int | None
    rated: int
    satisfied: int
    satisfied_rate: float | None


# --- raw cells from SQL ------------------------------------------------------------------------------


@dataclass
class _Counts:
    """Counters of one roll-up bucket."""

    eligible: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))
    called: int = 0
    reached: int = 0
    attempts: int = 0
    completed: int = 0
    completed_call: int = 0
    # (agency_id, stratum) → [rated, satisfied]
    answers: dict[tuple[int, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    reasons: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def rated(self) -> int:
        return sum(v[0] for v in self.answers.values())

    @property
    def satisfied(self) -> int:
        return sum(v[1] for v in self.answers.values())


def _stratum_of(timeliness: Any) -> ColumnElement[str]:
    # A cancelled dossier is outside the population (returned dossiers), like a response with none.
    return case(
        (timeliness.in_((Timeliness.LATE.value, Timeliness.OVERDUE.value)), LATE_OVERDUE),
        (or_(timeliness.is_(None), timeliness == Timeliness.CANCELLED.value), UNKNOWN),
        else_=ON_TIME,
    )


def _in_period(column: Any, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


def _key(group_by: Sequence[str], agency_id: int, field_id: int | None, channel: str | None) -> GroupKey:
    return GroupKey(
        agency_id=agency_id if "agency" in group_by else None,
        field_id=field_id if "field" in group_by else None,
        channel=channel if "channel" in group_by else None,
    )


def _eligible_cells(
    session: Session, *, period: Period, by_field: bool, agency_id: int | None, field_id: int | None
) -> list[tuple[int, int | None, str, int]]:
    stratum = _stratum_of(Dossier.timeliness).label("stratum")
    stmt = select(Dossier.agency_id, stratum, func.count().label("n")).where(
        Dossier.status == DossierStatus.RETURNED.value, _in_period(Dossier.returned_at, period)
    )
    group: list[Any] = [Dossier.agency_id, stratum]
    if by_field:
        stmt = stmt.add_columns(Dossier.field_id)
        group.append(Dossier.field_id)
    if agency_id is not None:
        stmt = stmt.where(Dossier.agency_id == agency_id)
    if field_id is not None:
        stmt = stmt.where(Dossier.field_id == field_id)
    rows = session.execute(stmt.group_by(*group)).all()
    return [(r.agency_id, r.field_id if by_field else None, r.stratum, int(r.n)) for r in rows]


def _call_cells(
    session: Session, *, period: Period, by_field: bool, agency_id: int | None, field_id: int | None
) -> list[tuple[int, int | None, int, int, int]]:
    # Two levels instead of COUNT(DISTINCT …): first one row per dossier (a hash aggregate), then the
    # sums per agency (and field). The agency and field are read from the attempt itself (copied from
    # the dossier when it was created), so the whole query is one scan of the covering index
    # ix_analysis_attempts_created: joining a million-row dossiers table cost two thirds of the city
    # summary's time on PostgreSQL.
    reached = func.max(case((CallAttempt.outcome.in_(REACHED_OUTCOMES), 1), else_=0))
    inner_group: list[Any] = [CallAttempt.agency_id, CallAttempt.dossier_id]
    if by_field:
        inner_group.append(CallAttempt.field_id)
    per_dossier = select(*inner_group, reached.label("reached"), func.count().label("attempts")).where(
        # Finished attempts, told by their outcome (set exactly when an attempt finishes): the index
        # leaves the status out so that the dialer's status changes stay HOT updates (dialer_0003).
        CallAttempt.outcome.is_not(None),
        _in_period(CallAttempt.created_at, period),
    )
    if agency_id is not None:
        per_dossier = per_dossier.where(CallAttempt.agency_id == agency_id)
    if field_id is not None:
        per_dossier = per_dossier.where(CallAttempt.field_id == field_id)
    inner = per_dossier.group_by(*inner_group).subquery()
    group: list[Any] = [inner.c.agency_id]
    if by_field:
        group.append(inner.c.field_id)
    stmt = select(
        *group,
        func.count().label("called"),
        func.sum(inner.c.reached).label("reached"),
        func.sum(inner.c.attempts).label("attempts"),
    ).group_by(*group)
    rows = session.execute(stmt).all()
    return [
        (
            r.agency_id,
            r.field_id if by_field else None,
            int(r.called),
            int(r.reached or 0),
            int(r.attempts or 0),
        )
        for r in rows
    ]


def _response_cells(
    session: Session,
    *,
    period: Period,
    by_field: bool,
    agency_id: int | None,
    field_id: int | None,
    channel: str | None,
    with_stratum: bool = True,
) -> list[tuple[int, int | None, str, str, int, int, int]]:
    # The stratum comes from the dossier's timeliness copied onto the response when it was created
    # (covered by ix_analysis_responses_answered): joining the million-row dossiers table for it cost
    # about a second of the city summary on PostgreSQL. Comparisons only need the rate.
    stratum = (_stratum_of(SurveyResponse.dossier_timeliness) if with_stratum else literal(UNKNOWN)).label(
        "stratum"
    )
    completed = func.sum(case((SurveyResponse.status == ResponseStatus.COMPLETED.value, 1), else_=0))
    rated = func.sum(
        case(
            (and_(SurveyResponse.status.in_(RATED_STATUSES), SurveyResponse.satisfied.is_not(None)), 1),
            else_=0,
        )
    )
    satisfied = func.sum(
        case(
            (and_(SurveyResponse.status.in_(RATED_STATUSES), SurveyResponse.satisfied.is_(True)), 1),
            else_=0,
        )
    )
    stmt = (
        select(
            SurveyResponse.agency_id,
            SurveyResponse.channel,
            stratum,
            completed.label("completed"),
            rated.label("rated"),
            satisfied.label("satisfied"),
        )
        .select_from(SurveyResponse)
        .where(_in_period(SurveyResponse.answered_at, period))
    )
    group: list[Any] = [SurveyResponse.agency_id, SurveyResponse.channel]
    if with_stratum:
        group.append(stratum)
    if by_field:
        stmt = stmt.add_columns(SurveyResponse.field_id)
        group.append(SurveyResponse.field_id)
    stmt = _filter_responses(stmt, agency_id=agency_id, field_id=field_id, channel=channel)
    rows = session.execute(stmt.group_by(*group)).all()
    return [
        (
            r.agency_id,
            r.field_id if by_field else None,
            r.channel,
            r.stratum,
            int(r.completed or 0),
            int(r.rated or 0),
            int(r.satisfied or 0),
        )
        for r in rows
    ]


def _reason_cells(
    session: Session,
    *,
    period: Period,
    by_field: bool,
    agency_id: int | None,
    field_id: int | None,
    channel: str | None,
) -> list[tuple[int, int | None, str, int, int]]:
    stmt = (
        select(
            SurveyResponse.agency_id,
            SurveyResponse.channel,
            ResponseReason.reason_code,
            func.count().label("n"),
        )
        .select_from(ResponseReason)
        .join(SurveyResponse, SurveyResponse.id == ResponseReason.response_id)
        .where(
            _in_period(SurveyResponse.answered_at, period),
            SurveyResponse.satisfied.is_(False),
            SurveyResponse.status.in_(RATED_STATUSES),
        )
    )
    group: list[Any] = [SurveyResponse.agency_id, SurveyResponse.channel, ResponseReason.reason_code]
    if by_field:
        stmt = stmt.add_columns(SurveyResponse.field_id)
        group.append(SurveyResponse.field_id)
    stmt = _filter_responses(stmt, agency_id=agency_id, field_id=field_id, channel=channel)
    rows = session.execute(stmt.group_by(*group)).all()
    return [
        (r.agency_id, r.field_id if by_field else None, r.channel, int(r.reason_code), int(r.n)) for r in rows
    ]


def _filter_responses(stmt: Any, *, agency_id: int | None, field_id: int | None, channel: str | None) -> Any:
    if agency_id is not None:
        stmt = stmt.where(SurveyResponse.agency_id == agency_id)
    if field_id is not None:
        stmt = stmt.where(SurveyResponse.field_id == field_id)
    if channel is not None:
        stmt = stmt.where(SurveyResponse.channel == channel)
    return stmt


# --- roll-up -----------------------------------------------------------------------------------------


def tune_for_aggregation(session: Session) -> None:
    """On PostgreSQL, set this transaction up for a few large aggregates.

    JIT compilation costs ~0.2 s per statement and buys nothing on these short scans; a larger
    ``work_mem`` keeps the per-dossier hash aggregates in memory; parallel workers would each rebuild
    that aggregate (it sits below the Gather), tripling the work on a two-core host. ``SET LOCAL``
    ends with the transaction (the request or command), so nothing leaks to other work.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


@dataclass(frozen=True)
class _Cells:
    """The raw aggregates of one period, at agency (and field) granularity, always split by channel."""

    eligible: list[tuple[int, int | None, str, int]]
    calls: list[tuple[int, int | None, int, int, int]]
    responses: list[tuple[int, int | None, str, str, int, int, int]]
    reasons: list[tuple[int, int | None, str, int, int]]


def _fetch(
    session: Session,
    *,
    period: Period,
    by_field: bool,
    agency_id: int | None,
    field_id: int | None,
    channel: str | None,
    answers_only: bool = False,
) -> _Cells:
    """Run the period's aggregates; ``answers_only`` (for comparisons) skips dossiers, calls, reasons."""
    eligible = (
        []
        if answers_only
        else _eligible_cells(
            session, period=period, by_field=by_field, agency_id=agency_id, field_id=field_id
        )
    )
    responses = _response_cells(
        session,
        period=period,
        by_field=by_field,
        agency_id=agency_id,
        field_id=field_id,
        channel=channel,
        with_stratum=not answers_only,
    )
    reasons = (
        []
        if answers_only
        else _reason_cells(
            session, period=period, by_field=by_field, agency_id=agency_id, field_id=field_id, channel=channel
        )
    )
    calls_wanted = not answers_only and channel in (None, ResponseChannel.CALL.value)
    calls = (
        _call_cells(session, period=period, by_field=by_field, agency_id=agency_id, field_id=field_id)
        if calls_wanted
        else []
    )
    return _Cells(eligible=eligible, calls=calls, responses=responses, reasons=reasons)


def _bucket(
    cells: _Cells, *, group_by: Sequence[str], channel: str | None
) -> tuple[dict[GroupKey, _Counts], _Counts]:
    """Roll the cells up into one bucket per ``group_by`` key (a dossier has one agency and one field,
    so distinct-dossier counts add up across fields)."""
    buckets: dict[GroupKey, _Counts] = defaultdict(_Counts)
    total = _Counts()
    channels_of_rows = [channel] if channel else None
    eligible, calls, responses, reasons = cells.eligible, cells.calls, cells.responses, cells.reasons

    # Dossier-side figures do not depend on the channel: with a channel dimension they belong to the
    # rows of every channel seen for that agency/field (and to the call row for calls).
    # Channels are collected per row of the view (not per cell) so a view gives the same figures
    # whatever granularity the cells were fetched at.
    seen_channels: dict[GroupKey, set[str]] = defaultdict(set)
    for a, f, ch, *_ in responses:
        seen_channels[_key(group_by, a, f, None)].add(ch)

    def keys_for(a: int, f: int | None, only_channel: str | None = None) -> list[GroupKey]:
        if "channel" not in group_by:
            return [_key(group_by, a, f, None)]
        if only_channel is not None:
            return [_key(group_by, a, f, only_channel)]
        seen = seen_channels.get(_key(group_by, a, f, None), set())
        chans = channels_of_rows or sorted(seen | {ResponseChannel.CALL.value})
        return [_key(group_by, a, f, c) for c in chans]

    for a, f, stratum, n in eligible:
        for k in keys_for(a, f):
            buckets[k].eligible[(a, stratum)] += n
        total.eligible[(a, stratum)] += n
    for a, f, called, reached, attempts in calls:
        for k in keys_for(a, f, ResponseChannel.CALL.value):
            b = buckets[k]
            b.called += called
            b.reached += reached
            b.attempts += attempts
        total.called += called
        total.reached += reached
        total.attempts += attempts
    for a, f, ch, stratum, completed, rated, satisfied in responses:
        for target in (buckets[_key(group_by, a, f, ch)], total):
            target.completed += completed
            if ch == ResponseChannel.CALL.value:
                target.completed_call += completed
            cell = target.answers[(a, stratum)]
            cell[0] += rated
            cell[1] += satisfied
    for a, f, ch, code, n in reasons:
        buckets[_key(group_by, a, f, ch)].reasons[code] += n
        total.reasons[code] += n
    return buckets, total


def _figures(
    counts: _Counts, *, required: int | None, previous: Comparison | None, last_year: Comparison | None
) -> Figures:
    rated, satisfied = counts.rated, counts.satisfied
    by_stratum: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (_agency, stratum), (r, s) in counts.answers.items():
        by_stratum[stratum][0] += r
        by_stratum[stratum][1] += s
    strata: dict[str, stats.StratumCounts] = {}
    for agency_stratum in set(counts.eligible) | {k for k in counts.answers if k[1] != UNKNOWN}:
        if agency_stratum[1] == UNKNOWN:
            continue
        r, s = counts.answers.get(agency_stratum, [0, 0])
        strata[f"{agency_stratum[0]}:{agency_stratum[1]}"] = stats.StratumCounts(
            population=counts.eligible.get(agency_stratum, 0), rated=r, satisfied=s
        )
    unsatisfied = rated - satisfied
    reasons = tuple(
        ReasonFigure(code=code, count=n, share=stats.rate(n, unsatisfied))
        for code, n in sorted(counts.reasons.items())
    )
    eligible_total = sum(counts.eligible.values())
    eligible_late = sum(n for (_a, s), n in counts.eligible.items() if s == LATE_OVERDUE)
    return Figures(
        eligible=eligible_total,
        eligible_late_overdue=eligible_late,
        called=counts.called,
        reached=counts.reached,
        attempts=counts.attempts,
        completed=counts.completed,
        completed_call=counts.completed_call,
        rated=rated,
        satisfied=satisfied,
        satisfied_rate=stats.rate(satisfied, rated),
        satisfied_interval=stats.wilson_interval(satisfied, rated),
        response_rate=stats.rate(counts.completed_call, counts.called),
        contact_rate=stats.rate(counts.reached, counts.called),
        completion_rate=stats.rate(counts.completed_call, counts.reached),
        on_time_rate=stats.rate(by_stratum[ON_TIME][1], by_stratum[ON_TIME][0]),
        late_overdue_rate=stats.rate(by_stratum[LATE_OVERDUE][1], by_stratum[LATE_OVERDUE][0]),
        rated_on_time=by_stratum[ON_TIME][0],
        rated_late_overdue=by_stratum[LATE_OVERDUE][0],
        weighted=stats.weighted_estimate(strata),
        reasons=reasons,
        required_minimum=required,
        attainment=stats.attainment(counts.completed, required) if required is not None else None,
        previous=previous,
        last_year=last_year,
    )


def _comparison(current_rate: float | None, period: Period, counts: _Counts | None) -> Comparison:
    rated = counts.rated if counts else 0
    rate = stats.rate(counts.satisfied, rated) if counts else None
    return Comparison(period=period, rated=rated, satisfied_rate=rate, change=stats.delta(current_rate, rate))


def _yearly_minimums(
    session: Session,
    *,
    period: Period,
    agency_ids: Iterable[int],
    policy: str,
    policy_params: Mapping[str, Any] | None,
    period_eligible: Mapping[int, int],
    period_eligible_is_whole_city: bool,
) -> dict[int, int | None]:
    """Each agency's minimum for the period: the year's minimum, pro-rated by dossiers for a month/quarter.

    The yearly minimum is the campaign policy's (``callcenter.campaign.policies``) applied to the
    dossiers returned in the calendar year by every agency, whatever the summary is filtered to (an
    agency's minimum is the same in the city report and in its own; ``fixed_total`` splits the total
    over the whole city); ``None`` where the policy defines none for the unit.
    ``period_eligible`` holds each agency's dossiers of the period (of the agencies the summary
    admits); ``period_eligible_is_whole_city`` says it was counted without an agency or field filter,
    so that, for a year, it is the year's population and is not queried again.
    """
    kind, params = policies.parse_policy(policy, policy_params)
    ids = set(agency_ids)
    year = period.year_period()
    year_eligible: dict[int, int] = defaultdict(int)
    if period.kind == PeriodKind.YEAR and period_eligible_is_whole_city:
        year_eligible.update(period_eligible)
    else:
        for a, _f, _s, n in _eligible_cells(
            session, period=year, by_field=False, agency_id=None, field_id=None
        ):
            year_eligible[a] += n
    organisations_only = (
        _organisations_only(session, ids) if kind == policies.PolicyKind.DANANG_2223 else set()
    )
    needs_submitters = kind == policies.PolicyKind.REPEATED_SUBMITTER or bool(organisations_only)
    per_half_year = getattr(params, "surveys_per_half_year", 1)
    submitter_counts = (
        _repeated_submitter_counts(session, year=year, per_half_year=per_half_year)
        if needs_submitters
        else {}
    )
    yearly: dict[int, int | None] = {}
    if kind == policies.PolicyKind.FIXED_TOTAL:
        # The total is split over every unit of the city, not only those in this summary.
        parts = policies.compute_targets(
            kind, params, {a: policies.UnitPopulation(n) for a, n in year_eligible.items()}
        )
        yearly = {a: parts[a].n if a in parts else 0 for a in ids}
    else:
        for a in ids:
            if kind == policies.PolicyKind.REPEATED_SUBMITTER or a in organisations_only:
                yearly[a] = submitter_counts.get(a, 0)
                continue
            try:
                unit = policies.UnitPopulation(year_eligible.get(a, 0))
                yearly[a] = policies.compute_targets(kind, params, {a: unit})[a].n
            except policies.PolicyNotApplicable:
                yearly[a] = None
    if period.kind == PeriodKind.YEAR:
        return yearly
    return {
        a: None
        if n is None
        else stats.prorated_minimum(n, period_eligible.get(a, 0), year_eligible.get(a, 0))
        for a, n in yearly.items()
    }


def _organisations_only(session: Session, agency_ids: Iterable[int]) -> set[int]:
    ids = list(agency_ids)
    if not ids:
        return set()
    stmt = select(Agency.id).where(Agency.id.in_(ids), Agency.organisations_only.is_(True))
    return set(session.scalars(stmt))


def _repeated_submitter_counts(session: Session, *, year: Period, per_half_year: int) -> dict[int, int]:
    """Per agency: surveys the repeated-submitter rule asks for (per submitter and half-year, capped)."""
    month = month_bucket(Dossier.returned_at)
    half = case((func.substr(month, 6, 2) <= "06", 1), else_=2).label("half")
    pairs = (
        select(Dossier.agency_id, Dossier.phone_hash, half, func.count().label("n"))
        .where(Dossier.status == DossierStatus.RETURNED.value, _in_period(Dossier.returned_at, year))
        .group_by(Dossier.agency_id, Dossier.phone_hash, half)
        .subquery()
    )
    capped = case((pairs.c.n > per_half_year, per_half_year), else_=pairs.c.n)
    stmt = select(pairs.c.agency_id, func.sum(capped)).group_by(pairs.c.agency_id)
    return {int(a): int(n or 0) for a, n in session.execute(stmt)}


def summarise(
    session: Session,
    *,
    period: Period,
    group_by: Sequence[str] = ("agency",),
    agency_id: int | None = None,
    field_id: int | None = None,
    channel: str | None = None,
    policy: str = "danang_2223",
    policy_params: Mapping[str, Any] | None = None,
    compare: bool = True,
) -> Summary:
    """The figures of one period, one row per combination of ``group_by`` (agency, field, channel).

    ``channel=None`` combines every channel; pass ``"call"``, ``"web"``, ``"paper"`` or
    ``"independent"`` for one. The total row covers everything the filters admit. The minimum sample
    applies to an agency as a whole, so it is given on rows neither split nor filtered by field, and
    it is the same whether the summary covers the city or only that agency.
    """
    (summary,) = summarise_views(
        session,
        period=period,
        views=[group_by],
        agency_id=agency_id,
        field_id=field_id,
        channel=channel,
        policy=policy,
        policy_params=policy_params,
        compare=compare,
    )
    return summary


def summarise_views(
    session: Session,
    *,
    period: Period,
    views: Sequence[Sequence[str]],
    agency_id: int | None = None,
    field_id: int | None = None,
    channel: str | None = None,
    policy: str = "danang_2223",
    policy_params: Mapping[str, Any] | None = None,
    compare: bool = True,
) -> list[Summary]:
    """Several groupings of the same period from one set of queries (the report needs three)."""
    all_dims = []
    for group_by in views:
        unknown = set(group_by) - set(DIMENSIONS)
        if unknown:
            raise ValidationError(
                f"unknown dimension(s) {sorted(unknown)}; use {', '.join(DIMENSIONS)}", field="group_by"
            )
        all_dims.append(tuple(d for d in DIMENSIONS if d in group_by))
    if channel is not None and channel not in {c.value for c in ResponseChannel}:
        raise ValidationError(f"unknown channel '{channel}'", field="channel")
    policies.parse_policy(policy, policy_params)  # fail early on an unknown policy or bad parameters
    tune_for_aggregation(session)

    by_field = any("field" in dims for dims in all_dims)

    def fetch(when: Period, answers_only: bool) -> _Cells:
        return _fetch(
            session,
            period=when,
            by_field=by_field,
            agency_id=agency_id,
            field_id=field_id,
            channel=channel,
            answers_only=answers_only,
        )

    cells = fetch(period, False)
    prev_cells = year_cells = None
    if compare:
        prev_cells = fetch(period.previous(), True)
        # For a year both comparisons are the year before: one query serves both.
        same = period.same_last_year() == period.previous()
        year_cells = prev_cells if same else fetch(period.same_last_year(), True)

    agency_eligible: dict[int, int] = defaultdict(int)
    for a, _f, _s, n in cells.eligible:
        agency_eligible[a] += n
    agencies_in_play = set(agency_eligible) | {r[0] for r in cells.responses}
    # The minimum applies to an agency as a whole: a summary filtered to one field gives none.
    minimums = (
        {}
        if field_id is not None
        else _yearly_minimums(
            session,
            period=period,
            agency_ids=agencies_in_play,
            policy=policy,
            policy_params=policy_params,
            period_eligible=agency_eligible,
            period_eligible_is_whole_city=agency_id is None,
        )
    )
    keys = [GroupKey(c[0], c[1]) for c in cells.eligible] + [GroupKey(c[0], c[1]) for c in cells.responses]
    names = _names(session, keys)
    return [
        _summary_of(
            dims,
            cells=cells,
            prev_cells=prev_cells,
            year_cells=year_cells,
            period=period,
            minimums=minimums,
            names=names,
            agency_id=agency_id,
            field_id=field_id,
            channel=channel,
            policy=policy,
        )
        for dims in all_dims
    ]


def _summary_of(
    dims: tuple[str, ...],
    *,
    cells: _Cells,
    prev_cells: _Cells | None,
    year_cells: _Cells | None,
    period: Period,
    minimums: Mapping[int, int | None],
    names: Mapping[str, Mapping[int, tuple[str, str]]],
    agency_id: int | None,
    field_id: int | None,
    channel: str | None,
    policy: str,
) -> Summary:
    compare = prev_cells is not None and year_cells is not None
    buckets, total = _bucket(cells, group_by=dims, channel=channel)
    prev_buckets: dict[GroupKey, _Counts] = {}
    year_buckets: dict[GroupKey, _Counts] = {}
    prev_total = year_total = None
    if prev_cells is not None and year_cells is not None:
        prev_buckets, prev_total = _bucket(prev_cells, group_by=dims, channel=channel)
        year_buckets, year_total = _bucket(year_cells, group_by=dims, channel=channel)
    rows: list[SummaryRow] = []
    for key in sorted(buckets, key=lambda k: _sort_key(k, names)):
        counts = buckets[key]
        required = None
        # Not on a field's figures (grouped or filtered by field), like the total row below: the
        # minimum and its attainment are an agency's, whatever period kind.
        if "field" not in dims and field_id is None and key.agency_id is not None:
            required = minimums.get(key.agency_id)
        current_rate = stats.rate(counts.satisfied, counts.rated)
        figures = _figures(
            counts,
            required=required,
            previous=_comparison(current_rate, period.previous(), prev_buckets.get(key)) if compare else None,
            last_year=_comparison(current_rate, period.same_last_year(), year_buckets.get(key))
            if compare
            else None,
        )
        a_code, a_name = names["agency"].get(key.agency_id, (None, None)) if key.agency_id else (None, None)
        f_code, f_name = names["field"].get(key.field_id, (None, None)) if key.field_id else (None, None)
        rows.append(SummaryRow(key, a_code, a_name, f_code, f_name, figures))

    total_rate = stats.rate(total.satisfied, total.rated)
    known = [n for n in minimums.values() if n is not None]
    total_required: int | None = (
        minimums.get(agency_id) if agency_id is not None else (sum(known) if known else None)
    )
    total_figures = _figures(
        total,
        required=total_required if field_id is None else None,
        previous=_comparison(total_rate, period.previous(), prev_total) if compare else None,
        last_year=_comparison(total_rate, period.same_last_year(), year_total) if compare else None,
    )
    return Summary(
        period=period,
        group_by=dims,
        agency_id=agency_id,
        field_id=field_id,
        channel=channel,
        policy=policy,
        rows=tuple(rows),
        total=total_figures,
    )


def _names(session: Session, keys: Iterable[GroupKey]) -> dict[str, dict[int, tuple[str, str]]]:
    """Codes and names of the agencies and fields in the keys (two small queries)."""
    keys = list(keys)
    agency_ids = {k.agency_id for k in keys if k.agency_id is not None}
    field_ids = {k.field_id for k in keys if k.field_id is not None}
    agencies: dict[int, tuple[str, str]] = {}
    fields: dict[int, tuple[str, str]] = {}
    if agency_ids:
        for r in session.execute(
            select(Agency.id, Agency.code, Agency.name).where(Agency.id.in_(agency_ids))
        ):
            agencies[r.id] = (r.code, r.name)
    if field_ids:
        for r in session.execute(select(Field.id, Field.code, Field.name).where(Field.id.in_(field_ids))):
            fields[r.id] = (r.code, r.name)
    return {"agency": agencies, "field": fields}


def _sort_key(key: GroupKey, names: Mapping[str, Mapping[int, tuple[str, str]]]) -> tuple[str, str, str]:
    a = names["agency"].get(key.agency_id, ("", ""))[0] if key.agency_id else ""
    f = names["field"].get(key.field_id, ("", ""))[0] if key.field_id else ""
    return (a, f, key.channel or "")


def monthly_trend(
    session: Session,
    *,
    months: Sequence[Period],
    agency_id: int | None = None,
    by_agency: bool = False,
    channel: str | None = None,
) -> list[TrendPoint]:
    """Satisfied rate per local calendar month (bucketed in SQL in Asia/Ho_Chi_Minh)."""
    if not months:
        return []
    tune_for_aggregation(session)
    start, end = min(m.start for m in months), max(m.end for m in months)
    bucket = month_bucket(SurveyResponse.answered_at).label("month")
    rated = func.sum(case((SurveyResponse.satisfied.is_not(None), 1), else_=0)).label("rated")
    satisfied = func.sum(case((SurveyResponse.satisfied.is_(True), 1), else_=0)).label("satisfied")
    stmt = select(bucket, rated, satisfied).where(
        SurveyResponse.answered_at >= start,
        SurveyResponse.answered_at < end,
        SurveyResponse.status.in_(RATED_STATUSES),
    )
    group: list[Any] = [bucket]
    if by_agency:
        stmt = stmt.add_columns(SurveyResponse.agency_id)
        group.append(SurveyResponse.agency_id)
    stmt = _filter_responses(stmt, agency_id=agency_id, field_id=None, channel=channel)
    found: dict[tuple[str, int | None], tuple[int, int]] = {}
    for row in session.execute(stmt.group_by(*group)):
        found[(row.month, row.agency_id if by_agency else agency_id)] = (
            int(row.rated or 0),
            int(row.satisfied or 0),
        )
    wanted = {m.key for m in months}
    agencies = sorted({a for (_m, a) in found if a is not None}) if by_agency else [agency_id]
    points = []
    for a in agencies:
        for m in sorted(wanted):
            r, s = found.get((m, a), (0, 0))
            points.append(TrendPoint(month_key_to_period(m), a, r, s, stats.rate(s, r)))
    return points


def sum_trend(points: Iterable[TrendPoint], months: Sequence[Period]) -> list[TrendPoint]:
    """The city line from the per-agency lines (counts add up; the rate is recomputed)."""
    totals: dict[str, list[int]] = {m.key: [0, 0] for m in months}
    for p in points:
        if p.month.key in totals:
            totals[p.month.key][0] += p.rated
            totals[p.month.key][1] += p.satisfied
    return [
        TrendPoint(month_key_to_period(key), None, r, s, stats.rate(s, r))
        for key, (r, s) in sorted(totals.items())
    ]


def agency_by_code(session: Session, code: str) -> Agency:
    """The agency with this code, or a :class:`ValidationError` naming the unknown code."""
    agency = session.scalar(select(Agency).where(Agency.code == code))
    if agency is None:
        raise ValidationError(f"no agency with code '{code}'", field="agency")
    return agency


def field_by_code(session: Session, code: str) -> Field:
    row = session.scalar(select(Field).where(Field.code == code))
    if row is None:
        raise ValidationError(f"no field with code '{code}'", field="field")
    return row


@dataclass(frozen=True)
class Comment:
    agency_id: int
    field_id: int | None
    answered_at: datetime
    satisfied: bool | None
    text: str  # decrypted, with phone numbers and ID-like digit runs masked


def recent_comments(
    session: Session,
    *,
    period: Period,
    cipher: PiiCipher,
    agency_id: int | None = None,
    limit: int = 30,
) -> list[Comment]:
    """The latest free-text comments of the period, masked for a report (no phone, no ID number)."""
    stmt = (
        select(
            SurveyResponse.agency_id,
            SurveyResponse.field_id,
            SurveyResponse.answered_at,
            SurveyResponse.satisfied,
            SurveyResponse.comment_enc,
        )
        .where(SurveyResponse.comment_enc.is_not(None), _in_period(SurveyResponse.answered_at, period))
        .order_by(SurveyResponse.answered_at.desc(), SurveyResponse.id.desc())
        .limit(limit)
    )
    if agency_id is not None:
        stmt = stmt.where(SurveyResponse.agency_id == agency_id)
    return [
        Comment(
            agency_id=r.agency_id,
            field_id=r.field_id,
            answered_at=r.answered_at,
            satisfied=r.satisfied,
            text=mask_digit_runs(cipher.decrypt(r.comment_enc)),
        )
        for r in session.execute(stmt)
    ]


@dataclass(frozen=True)
class UntranscribedComments:
    """Recorded comments of a period whose text a report cannot show yet (or at all)."""

    pending: int = 0  # waiting for the speech worker
    failed: int = 0  # the speech engine gave up: the sealed recording is all there is


def untranscribed_comments(
    session: Session, *, period: Period, agency_id: int | None = None
) -> UntranscribedComments:
    """How many recorded comments of the period have no text, so a report does not say "no comment"."""
    stmt = (
        select(SurveyResponse.comment_status, func.count())
        .where(
            SurveyResponse.comment_status.in_(("pending", "failed")),
            _in_period(SurveyResponse.answered_at, period),
        )
        .group_by(SurveyResponse.comment_status)
    )
    if agency_id is not None:
        stmt = stmt.where(SurveyResponse.agency_id == agency_id)
    counts = {status: int(n) for status, n in session.execute(stmt)}
    return UntranscribedComments(pending=counts.get("pending", 0), failed=counts.get("failed", 0))


def agency_name(session: Session, agency_id: int) -> str:
    name = session.scalar(select(Agency.name).where(Agency.id == agency_id))
    if name is None:
        raise ValidationError(f"no agency with id {agency_id}", field="agency")
    return name


def agency_code(session: Session, agency_id: int) -> str:
    code = session.scalar(select(Agency.code).where(Agency.id == agency_id))
    if code is None:
        raise ValidationError(f"no agency with id {agency_id}", field="agency")
    return code
