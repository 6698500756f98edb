"""Sample-size policies: how many completed surveys each unit needs. Pure functions, exact arithmetic.

Four policies from the seed documents (see ``docs/campaigns.md`` for the readings and their limits):

* ``danang_2223`` — Decision 2223/QĐ-UBND (seed 000, III.2.c): ``n = N / (1 + N·e²)`` with the margin
  ``e`` chosen by ``N`` in five tiers; units whose submitters are only other agencies use the
  repeated-submitter rule instead (same section).
* ``repeated_submitter`` — one survey per submitter per half-year (at most two per submitter per year).
* ``seed003`` — Decision 5489/QĐ-UBND as quoted by seed 003: at least 200 **and** at least 30 % of the
  dossiers, for units with 200–1,000 dossiers.
* ``fixed_total`` — seed 002: a yearly total (10,000) split in proportion to each unit's dossier count,
  largest-remainder rounding so the parts add up to the total.

Arithmetic is done with :class:`fractions.Fraction` built from the decimal text of each parameter, so
``0.3 × 1000`` is exactly 300 and a ceiling never lands one too high on a float artefact.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from callcenter.campaign.errors import field_error
from callcenter.core.errors import ValidationError

K = TypeVar("K", bound=Hashable)


class PolicyKind(enum.StrEnum):
    DANANG_2223 = "danang_2223"
    REPEATED_SUBMITTER = "repeated_submitter"
    SEED003 = "seed003"
    FIXED_TOTAL = "fixed_total"


class Rounding(enum.StrEnum):
    # The seed reads 259.74 as "at least 259": the integer part. Ceil (260) is the conservative option
    # that guarantees the margin of error is really met.
    FLOOR = "floor"
    CEIL = "ceil"


class PolicyNotApplicable(ValidationError):
    """The chosen policy defines no sample size for this unit (e.g. seed 003 outside 200–1,000)."""


# ---------------------------------------------------------------------------------------------------
# Parameters (validated; stored in campaigns.policy_params)
# ---------------------------------------------------------------------------------------------------


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MarginTier(_Params):
    """Margin ``e`` for units with at most ``up_to`` dossiers (``None``: no upper bound)."""

    up_to: Annotated[int, Field(ge=1)] | None
    margin: Annotated[float, Field(gt=0, lt=1)]


DANANG_TIERS: tuple[MarginTier, ...] = (
    MarginTier(up_to=2000, margin=0.07),
    MarginTier(up_to=4000, margin=0.06),
    MarginTier(up_to=6000, margin=0.05),
    MarginTier(up_to=10000, margin=0.04),
    MarginTier(up_to=None, margin=0.03),
)


class DaNangParams(_Params):
    rounding: Rounding = Rounding.FLOOR
    tiers: tuple[MarginTier, ...] = DANANG_TIERS
    # Seed 000 applies the repeated-submitter rule to units whose submitters are only agencies.
    organisations_only_rule: bool = True

    @model_validator(mode="after")
    def _tiers_are_ordered(self) -> DaNangParams:
        if not self.tiers:
            raise ValueError("tiers: at least one tier is needed")
        previous_bound = 0
        previous_margin = 1.0
        for index, tier in enumerate(self.tiers):
            last = index == len(self.tiers) - 1
            if tier.up_to is None and not last:
                raise ValueError(f"tiers[{index}].up_to: only the last tier may be open-ended")
            if last and tier.up_to is not None:
                raise ValueError(f"tiers[{index}].up_to: the last tier must be open-ended (null)")
            if tier.up_to is not None and tier.up_to <= previous_bound:
                raise ValueError(f"tiers[{index}].up_to: bounds must increase ({tier.up_to})")
            # A larger unit never gets a looser margin: this keeps n monotone in N (see the tests).
            if tier.margin > previous_margin:
                raise ValueError(f"tiers[{index}].margin: margins must not increase with N")
            previous_bound = tier.up_to or previous_bound
            previous_margin = tier.margin
        return self


class RepeatedSubmitterParams(_Params):
    surveys_per_half_year: Annotated[int, Field(ge=1, le=6)] = 1


class Seed003Params(_Params):
    minimum: Annotated[int, Field(ge=1)] = 200
    percent: Annotated[float, Field(gt=0, le=100)] = 30
    range_min: Annotated[int, Field(ge=0)] = 200
    range_max: Annotated[int, Field(ge=1)] = 1000
    # The seed is silent outside 200–1,000 dossiers. "all": survey every dossier of a smaller unit
    # (the nearest reading of "at least 200"); "refuse": stop with an error naming the unit.
    below_range: Literal["all", "refuse"] = "all"
    # Above 1,000 there is no reading that is not an invention: refuse by default, or apply the
    # percentage alone ("percent") if the operator decides so.
    above_range: Literal["refuse", "percent"] = "refuse"

    @model_validator(mode="after")
    def _range_is_ordered(self) -> Seed003Params:
        if self.range_max < self.range_min:
            raise ValueError("range_max: must be at least range_min")
        return self


class FixedTotalParams(_Params):
    total: Annotated[int, Field(ge=1, le=10_000_000)] = 10_000


POLICY_PARAMS: dict[PolicyKind, type[_Params]] = {
    PolicyKind.DANANG_2223: DaNangParams,
    PolicyKind.REPEATED_SUBMITTER: RepeatedSubmitterParams,
    PolicyKind.SEED003: Seed003Params,
    PolicyKind.FIXED_TOTAL: FixedTotalParams,
}

PolicyParams = DaNangParams | RepeatedSubmitterParams | Seed003Params | FixedTotalParams


def parse_policy(policy: str, params: Mapping[str, Any] | None) -> tuple[PolicyKind, PolicyParams]:
    """Validate a policy name and its parameters; errors name the offending field."""
    try:
        kind = PolicyKind(policy)
    except ValueError:
        choices = ", ".join(k.value for k in PolicyKind)
        raise ValidationError(
            f"unknown policy {policy!r} (choose one of {choices})", field="policy"
        ) from None
    try:
        parsed = POLICY_PARAMS[kind].model_validate(dict(params or {}))
    except PydanticValidationError as exc:
        raise field_error(exc, "policy_params") from None
    return kind, parsed  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------
# The rules
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleSize:
    n: int  # completed surveys required
    exact: Fraction  # the formula's value before rounding
    rule: str  # a short human description of how n came about


def margin_for(population: int, tiers: Iterable[MarginTier] = DANANG_TIERS) -> float:
    """The margin of error ``e`` the seed's tiers assign to a unit with ``population`` dossiers."""
    for tier in tiers:
        if tier.up_to is None or population <= tier.up_to:
            return tier.margin
    raise ValueError("tiers have no open-ended last tier")


def _round(value: Fraction, rounding: Rounding) -> int:
    return math.floor(value) if rounding == Rounding.FLOOR else math.ceil(value)


def danang_sample_size(population: int, params: DaNangParams | None = None) -> SampleSize:
    """Decision 2223's minimum sample: ``n = N / (1 + N·e²)``, rounded per the setting, never above N."""
    params = params or DaNangParams()
    _check_population(population)
    if population == 0:
        return SampleSize(0, Fraction(0), "no dossiers")
    margin = margin_for(population, params.tiers)
    e = Fraction(str(margin))
    exact = Fraction(population) / (1 + population * e * e)
    n = min(population, _round(exact, params.rounding))
    return SampleSize(n, exact, f"N/(1+N·e²), e={margin:.0%}, {params.rounding.value}")


@dataclass(frozen=True, slots=True)
class Submission:
    submitter: str  # a stable key of the submitter (the phone hash: names are encrypted)
    day: date  # when the result was returned


def half_year(day: date) -> tuple[int, int]:
    """(year, 1 or 2): the seed's two milestones, first and last six months."""
    return day.year, 1 if day.month <= 6 else 2


def repeated_submitter_sample_size(
    submissions: Iterable[Submission], params: RepeatedSubmitterParams | None = None
) -> SampleSize:
    """One survey per submitter per half-year, however often it filed (so ≤ 2 per submitter per year)."""
    params = params or RepeatedSubmitterParams()
    dossiers_per_pair: dict[tuple[str, tuple[int, int]], int] = {}
    for s in submissions:
        key = (s.submitter, half_year(s.day))
        dossiers_per_pair[key] = dossiers_per_pair.get(key, 0) + 1
    # Never more surveys than dossiers: a submitter with one dossier in a half-year gets one survey.
    n = sum(min(params.surveys_per_half_year, count) for count in dossiers_per_pair.values())
    return SampleSize(n, Fraction(n), f"{params.surveys_per_half_year} per submitter per half-year")


def seed003_sample_size(population: int, params: Seed003Params | None = None) -> SampleSize:
    """Seed 003: at least ``minimum`` AND at least ``percent`` % of N, for units within the range."""
    params = params or Seed003Params()
    _check_population(population)
    share = Fraction(str(params.percent)) / 100 * population
    if population < params.range_min:
        if params.below_range == "refuse":
            raise PolicyNotApplicable(
                f"seed003 is defined for {params.range_min}–{params.range_max} dossiers, "
                f"this unit has {population}",
                field="policy",
            )
        return SampleSize(population, Fraction(population), f"below {params.range_min}: every dossier")
    if population > params.range_max:
        if params.above_range == "refuse":
            raise PolicyNotApplicable(
                f"seed003 is defined for {params.range_min}–{params.range_max} dossiers, "
                f"this unit has {population} (use danang_2223 or fixed_total)",
                field="policy",
            )
        return SampleSize(min(population, math.ceil(share)), share, f"{params.percent:g}% (above range)")
    exact = max(Fraction(params.minimum), share)
    n = min(population, math.ceil(exact))
    return SampleSize(n, exact, f"max({params.minimum}, {params.percent:g}%·N)")


def allocate_fixed_total(total: int, populations: Mapping[K, int]) -> dict[K, int]:
    """Split ``total`` in proportion to each unit's N with largest remainders; parts sum to the total.

    No unit gets more than its N. If the units hold fewer dossiers than ``total`` every unit gets
    all of its dossiers and the sum is ``sum(N)``. Ties among remainders go to the larger unit, then
    to the unit listed first, so the split is deterministic.
    """
    if total < 0:
        raise ValidationError("must not be negative", field="policy_params.total")
    for key, population in populations.items():
        if population < 0:
            raise ValidationError(f"negative population for unit {key!r}", field="population")
    grand = sum(populations.values())
    if grand <= total:
        return dict(populations)
    quotas = {key: Fraction(total * pop, grand) for key, pop in populations.items()}
    parts = {key: math.floor(q) for key, q in quotas.items()}
    left = total - sum(parts.values())
    order = list(populations)
    ranked = sorted(order, key=lambda k: (-(quotas[k] - parts[k]), -populations[k], order.index(k)))
    for key in ranked[:left]:
        # quota < N whenever total < sum(N), so one more never passes N
        parts[key] += 1
    return parts


def _check_population(population: int) -> None:
    if population < 0:
        raise ValidationError(f"must not be negative ({population})", field="population")


# ---------------------------------------------------------------------------------------------------
# One entry point for a campaign: targets for every unit at once (fixed_total needs all of them)
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnitPopulation:
    population: int  # N: dossiers of the unit in the campaign's scope
    organisations_only: bool = False
    submissions: tuple[Submission, ...] = ()  # needed by the repeated-submitter rule


def compute_targets(
    kind: PolicyKind, params: PolicyParams, units: Mapping[K, UnitPopulation]
) -> dict[K, SampleSize]:
    """The required completed surveys per unit under one policy."""
    if kind == PolicyKind.FIXED_TOTAL:
        assert isinstance(params, FixedTotalParams)
        parts = allocate_fixed_total(params.total, {k: u.population for k, u in units.items()})
        return {k: SampleSize(parts[k], Fraction(parts[k]), f"share of {params.total}") for k in units}
    result: dict[K, SampleSize] = {}
    for key, unit in units.items():
        try:
            result[key] = _unit_target(kind, params, unit)
        except PolicyNotApplicable as exc:
            raise PolicyNotApplicable(f"unit {key}: {exc.reason}", field=exc.field) from None
    return result


def _unit_target(kind: PolicyKind, params: PolicyParams, unit: UnitPopulation) -> SampleSize:
    if kind == PolicyKind.DANANG_2223:
        assert isinstance(params, DaNangParams)
        if unit.organisations_only and params.organisations_only_rule:
            return repeated_submitter_sample_size(unit.submissions)
        return danang_sample_size(unit.population, params)
    if kind == PolicyKind.REPEATED_SUBMITTER:
        assert isinstance(params, RepeatedSubmitterParams)
        return repeated_submitter_sample_size(unit.submissions, params)
    assert isinstance(params, Seed003Params)
    return seed003_sample_size(unit.population, params)
