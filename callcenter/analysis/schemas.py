"""JSON shapes of the results API (documented in OpenAPI). None of them can carry personal data."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from callcenter.analysis import service, stats
from callcenter.analysis.periods import Period


class IntervalOut(BaseModel):
    low: float
    high: float


class ReasonOut(BaseModel):
    code: int
    label: str | None = None
    count: int
    share: float | None = Field(description="Share of the unsatisfied answers naming this reason")


class ComparisonOut(BaseModel):
    period: str
    rated: int
    satisfied_rate: float | None
    change: float | None = Field(description="Current rate minus this period's rate")


class WeightedOut(BaseModel):
    estimate: float
    interval: IntervalOut | None
    effective_n: float
    covered_share: float = Field(description="Share of the dossiers whose stratum has answers")


class FiguresOut(BaseModel):
    eligible: int = Field(description="Dossiers returned in the period")
    eligible_late_overdue: int
    called: int = Field(description="Distinct dossiers called (finished attempts)")
    reached: int
    attempts: int
    completed: int
    completed_call: int
    rated: int = Field(description="Answers with a satisfaction answer (denominator of the rate)")
    satisfied: int
    unsatisfied: int
    satisfied_rate: float | None
    satisfied_interval: IntervalOut | None = Field(description="Wilson 95% interval")
    weighted: WeightedOut | None = Field(description="Estimate corrected for the over-sampled late stratum")
    on_time_rate: float | None
    late_overdue_rate: float | None
    response_rate: float | None
    contact_rate: float | None
    completion_rate: float | None
    reasons: list[ReasonOut]
    required_minimum: int | None
    attainment: float | None
    previous: ComparisonOut | None
    last_year: ComparisonOut | None


class RowOut(BaseModel):
    agency_code: str | None
    agency_name: str | None
    field_code: str | None
    field_name: str | None
    channel: str | None
    figures: FiguresOut


class SummaryOut(BaseModel):
    period: str
    period_label: str
    start: datetime
    end: datetime
    group_by: list[str]
    agency: str | None
    field: str | None
    channel: str | None
    policy: str
    rows: list[RowOut]
    total: FiguresOut


class TrendPointOut(BaseModel):
    month: str
    agency_code: str | None
    rated: int
    satisfied: int
    satisfied_rate: float | None


def _interval(i: stats.Interval | None) -> IntervalOut | None:
    return IntervalOut(low=i.low, high=i.high) if i else None


def _comparison(c: service.Comparison | None) -> ComparisonOut | None:
    if c is None:
        return None
    return ComparisonOut(period=c.period.key, rated=c.rated, satisfied_rate=c.satisfied_rate, change=c.change)


def figures_out(f: service.Figures, labels: dict[int, str] | None = None) -> FiguresOut:
    labels = labels or {}
    weighted = (
        WeightedOut(
            estimate=f.weighted.estimate,
            interval=_interval(f.weighted.interval),
            effective_n=f.weighted.effective_n,
            covered_share=f.weighted.covered_share,
        )
        if f.weighted
        else None
    )
    return FiguresOut(
        eligible=f.eligible,
        eligible_late_overdue=f.eligible_late_overdue,
        called=f.called,
        reached=f.reached,
        attempts=f.attempts,
        completed=f.completed,
        completed_call=f.completed_call,
        rated=f.rated,
        satisfied=f.satisfied,
        unsatisfied=f.unsatisfied,
        satisfied_rate=f.satisfied_rate,
        satisfied_interval=_interval(f.satisfied_interval),
        weighted=weighted,
        on_time_rate=f.on_time_rate,
        late_overdue_rate=f.late_overdue_rate,
        response_rate=f.response_rate,
        contact_rate=f.contact_rate,
        completion_rate=f.completion_rate,
        reasons=[
            ReasonOut(code=r.code, label=labels.get(r.code), count=r.count, share=r.share) for r in f.reasons
        ],
        required_minimum=f.required_minimum,
        attainment=f.attainment,
        previous=_comparison(f.previous),
        last_year=_comparison(f.last_year),
    )


def summary_out(
    s: service.Summary, *, agency: str | None, field: str | None, labels: dict[int, str] | None = None
) -> SummaryOut:
    period: Period = s.period
    return SummaryOut(
        period=period.key,
        period_label=period.label_vi,
        start=period.start,
        end=period.end,
        group_by=list(s.group_by),
        agency=agency,
        field=field,
        channel=s.channel,
        policy=s.policy,
        rows=[
            RowOut(
                agency_code=r.agency_code,
                agency_name=r.agency_name,
                field_code=r.field_code,
                field_name=r.field_name,
                channel=r.key.channel,
                figures=figures_out(r.figures, labels),
            )
            for r in s.rows
        ],
        total=figures_out(s.total, labels),
    )
