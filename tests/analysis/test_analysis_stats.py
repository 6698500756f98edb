"""The pure statistics, against hand-computed cases and an independent implementation (statsmodels)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from statsmodels.stats.proportion import proportion_confint

from callcenter.analysis import stats
from callcenter.analysis.periods import Period, PeriodKind, trailing_months
from callcenter.core.clock import VN_TZ
from callcenter.core.errors import ValidationError


def test_wilson_hand_computed() -> None:
    # 8 of 10, z = 1.96: centre = (0.8 + 0.19208) / 1.38416 = 0.71676; half = 1.96 * sqrt(0.016 + 0.0009604)
    # / 1.38416 = 0.18440 → [0.4902, 0.9433] (the textbook values).
    interval = stats.wilson_interval(8, 10)
    assert interval is not None
    assert interval.low == pytest.approx(0.4902, abs=5e-4)
    assert interval.high == pytest.approx(0.9433, abs=5e-4)


def test_wilson_edges() -> None:
    assert stats.wilson_interval(0, 0) is None
    zero = stats.wilson_interval(0, 20)
    full = stats.wilson_interval(20, 20)
    assert zero is not None and full is not None
    assert zero.low == 0.0 and 0.0 < zero.high < 0.2
    assert full.high == 1.0 and 0.8 < full.low < 1.0
    with pytest.raises(ValueError):
        stats.wilson_interval(11, 10)


def test_wilson_matches_statsmodels() -> None:
    rnd = random.Random(7)
    for _ in range(300):
        n = rnd.randint(1, 5000)
        k = rnd.randint(0, n)
        ours = stats.wilson_interval(k, n)
        low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert ours is not None
        assert ours.low == pytest.approx(low, abs=1e-9)
        assert ours.high == pytest.approx(high, abs=1e-9)


def test_rate_never_divides_by_zero() -> None:
    assert stats.rate(3, 0) is None
    assert stats.rate(3, 4) == 0.75


def test_weighted_estimate_hand_computed() -> None:
    # 80 % of the dossiers were on time, 20 % late; the survey over-sampled the late ones.
    strata = {
        "on_time": stats.StratumCounts(population=80, rated=4, satisfied=3),
        "late": stats.StratumCounts(population=20, rated=6, satisfied=2),
    }
    est = stats.weighted_estimate(strata)
    assert est is not None
    # 0.8 * 3/4 + 0.2 * 2/6 = 0.6 + 0.0667 (the raw rate would be 5/10 = 0.5)
    assert est.estimate == pytest.approx(0.6 + 0.2 / 3)
    # var = 0.64 * 0.75*0.25/4 + 0.04 * (1/3)(2/3)/6 = 0.03 + 0.00148148
    var = 0.64 * 0.1875 / 4 + 0.04 * (2 / 9) / 6
    assert est.effective_n == pytest.approx(est.estimate * (1 - est.estimate) / var)
    assert est.complete
    assert est.interval is not None
    assert est.interval.low < est.estimate < est.interval.high


def test_weighted_estimate_equals_raw_rate_under_proportional_sampling() -> None:
    strata = {
        "a": stats.StratumCounts(population=300, rated=30, satisfied=21),
        "b": stats.StratumCounts(population=100, rated=10, satisfied=4),
    }
    est = stats.weighted_estimate(strata)
    assert est is not None
    assert est.estimate == pytest.approx(25 / 40)


def test_weighted_estimate_with_an_unsurveyed_stratum() -> None:
    strata = {
        "on_time": stats.StratumCounts(population=90, rated=0, satisfied=0),
        "late": stats.StratumCounts(population=10, rated=5, satisfied=1),
    }
    est = stats.weighted_estimate(strata)
    assert est is not None
    assert est.estimate == pytest.approx(0.2)
    assert est.covered_share == pytest.approx(0.1)
    assert not est.complete
    assert stats.weighted_estimate({"x": stats.StratumCounts(0, 3, 1)}) is None
    assert stats.weighted_estimate({}) is None


def test_weighted_estimate_against_brute_force_reweighting() -> None:
    # Independent check: replicate each respondent by its design weight N_h / n_h and take the plain
    # weighted mean over individual answers.
    rnd = random.Random(11)
    for _ in range(50):
        strata = {}
        answers: list[tuple[float, int]] = []
        for h in range(rnd.randint(1, 5)):
            population = rnd.randint(1, 500)
            rated = rnd.randint(1, 40)
            satisfied = rnd.randint(0, rated)
            strata[str(h)] = stats.StratumCounts(population, rated, satisfied)
            answers += [(population / rated, 1)] * satisfied + [(population / rated, 0)] * (rated - satisfied)
        est = stats.weighted_estimate(strata)
        assert est is not None
        brute = sum(w * y for w, y in answers) / sum(w for w, _ in answers)
        assert est.estimate == pytest.approx(brute)


def test_prorated_minimum_and_attainment() -> None:
    # A year's minimum of 101 with half of the year's dossiers in the period: ceil(50.5) = 51.
    assert stats.prorated_minimum(101, 100, 200) == 51
    assert stats.prorated_minimum(101, 0, 200) == 0
    assert stats.attainment(11, 51) == pytest.approx(11 / 51)
    assert stats.attainment(3, 0) is None
    assert stats.delta(0.5, None) is None
    assert stats.delta(0.75, 0.5) == pytest.approx(0.25)


def test_periods_in_local_time() -> None:
    march = Period.parse("2026-03")
    assert march.start == datetime(2026, 2, 28, 17, tzinfo=UTC)
    assert march.end == datetime(2026, 3, 31, 17, tzinfo=UTC)
    assert march.previous() == Period.parse("2026-02")
    assert Period.parse("2026-01").previous() == Period.parse("2025-12")
    assert Period.parse("2026-q1").previous() == Period(PeriodKind.QUARTER, 2025, 4)
    assert Period.parse("2026-Q3").label_vi == "Quý III/2026"
    assert Period.parse("2026").same_last_year().label_vi == "Năm 2025"
    assert Period.parse("2026-Q4").end == datetime(2026, 12, 31, 17, tzinfo=UTC)
    assert Period.containing(datetime(2026, 3, 31, 17, 30, tzinfo=UTC), PeriodKind.MONTH).key == "2026-04"
    assert [p.key for p in trailing_months(Period.parse("2026-Q1"), 4)] == [
        "2025-12",
        "2026-01",
        "2026-02",
        "2026-03",
    ]
    for bad in ("2026-13", "26-01", "2026-Q5", "next year"):
        with pytest.raises(ValidationError, match="period"):
            Period.parse(bad)


def test_vietnam_has_a_fixed_utc_offset_over_the_reporting_range() -> None:
    # The SQLite month bucket adds seven hours; that is only right while the zone has no DST.
    moment = datetime(2015, 1, 1, tzinfo=UTC)
    while moment.year < 2036:
        assert moment.astimezone(VN_TZ).utcoffset() == timedelta(hours=7)
        moment += timedelta(days=15)
