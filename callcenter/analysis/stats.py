"""Survey statistics as pure functions: Wilson intervals, stratum weighting, rates, minimum samples.

Nothing here touches the database; :mod:`callcenter.analysis.service` feeds these functions with the
counts it aggregated in SQL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

# Two-sided 95 %: the 0.975 quantile of the standard normal distribution.
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def rate(numerator: int | float, denominator: int | float) -> float | None:
    """A share, or ``None`` when there is nothing to divide by (never a misleading 0 %)."""
    if denominator <= 0:
        return None
    return numerator / denominator


def wilson_interval(successes: float, n: float, z: float = Z95) -> Interval | None:
    """The Wilson score interval of a proportion (95 % by default); ``None`` when ``n`` is 0.

    ``n`` may be an effective (non-integer) sample size, as for a weighted estimate.
    """
    if n <= 0:
        return None
    if successes < 0 or successes > n:
        raise ValueError(f"successes={successes} outside [0, n={n}]")
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # Rounding can leave the bounds a hair outside [0, 1] or beside p at the extremes.
    return Interval(low=max(0.0, centre - half), high=min(1.0, centre + half))


@dataclass(frozen=True)
class StratumCounts:
    """One stratum of an agency: its population (dossiers) and what the survey found in it."""

    population: int  # dossiers of the stratum in the period (N_h)
    rated: int  # responses with a satisfaction answer (n_h)
    satisfied: int  # of which satisfied (s_h)


@dataclass(frozen=True)
class WeightedEstimate:
    estimate: float
    interval: Interval | None
    effective_n: float
    # Share of the population whose strata have at least one answer; below 1.0 the estimate only
    # speaks for the covered strata (their weights were renormalised) and the report says so.
    covered_share: float

    @property
    def complete(self) -> bool:
        return self.covered_share >= 1.0 - 1e-12


def weighted_estimate(strata: Mapping[str, StratumCounts], z: float = Z95) -> WeightedEstimate | None:
    """The stratified estimate of the satisfied share: each stratum's rate weighted by its population share.

    Late and overdue dossiers are deliberately over-sampled, so the raw rate over-represents them; the
    weights ``W_h = N_h / N`` restore each stratum to its true share of the agency's dossiers. The
    variance is the stratified-sampling one, ``sum W_h^2 p_h (1 - p_h) / n_h``; the interval is a
    Wilson interval on the Kish effective sample size ``p (1 - p) / var``. Strata without any answer
    are left out and the remaining weights renormalised (``covered_share`` < 1). ``None`` when no
    stratum has both a population and an answer.
    """
    total = sum(s.population for s in strata.values())
    covered = [s for s in strata.values() if s.population > 0 and s.rated > 0]
    if total <= 0 or not covered:
        return None
    covered_pop = sum(s.population for s in covered)
    estimate = 0.0
    variance = 0.0
    for s in covered:
        weight = s.population / covered_pop
        p_h = s.satisfied / s.rated
        estimate += weight * p_h
        variance += weight * weight * p_h * (1 - p_h) / s.rated
    rated_total = sum(s.rated for s in covered)
    # Every stratum unanimous: no sampling variance to speak of; fall back on the answer count.
    effective_n = estimate * (1 - estimate) / variance if variance > 0 else float(rated_total)
    interval = wilson_interval(estimate * effective_n, effective_n, z)
    return WeightedEstimate(
        estimate=estimate,
        interval=interval,
        effective_n=effective_n,
        covered_share=covered_pop / total,
    )


# --- minimum samples ------------------------------------------------------------------------------
# The yearly minimum itself comes from the campaign domain's policies (callcenter.campaign.policies),
# the same rules the campaigns draw their samples by.


def prorated_minimum(yearly_minimum: int, period_population: int, year_population: int) -> int:
    """The share of a year's minimum that falls on a month or quarter, in proportion to its dossiers."""
    if yearly_minimum <= 0 or period_population <= 0 or year_population <= 0:
        return 0
    return math.ceil(yearly_minimum * period_population / year_population - 1e-9)


def attainment(completed: int, required: int) -> float | None:
    """Completed surveys as a share of the required minimum (1.0 = attained)."""
    return rate(completed, required)


def delta(current: float | None, previous: float | None) -> float | None:
    """The change from an earlier figure, or ``None`` when either side is unknown."""
    if current is None or previous is None:
        return None
    return current - previous
