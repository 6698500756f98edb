"""Sample-size policies: the seed's worked example, each rule, and their properties (hypothesis)."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.campaign.policies import (
    DaNangParams,
    FixedTotalParams,
    PolicyKind,
    PolicyNotApplicable,
    Rounding,
    Seed003Params,
    Submission,
    UnitPopulation,
    allocate_fixed_total,
    compute_targets,
    danang_sample_size,
    margin_for,
    parse_policy,
    repeated_submitter_sample_size,
    seed003_sample_size,
)
from callcenter.core.errors import ValidationError

# --- Decision 2223 (seed 000, III.2.c) ------------------------------------------------------------


def test_seed_worked_example_4000_dossiers_needs_at_least_259() -> None:
    result = danang_sample_size(4000)
    assert result.exact == Fraction(4000) / (1 + Fraction(4000) * Fraction("0.0036"))
    assert round(float(result.exact), 4) == 259.7403  # "259,7403 phiếu"
    assert result.n == 259  # "tối thiểu 259 phiếu"


def test_ceil_rounding_is_the_conservative_option() -> None:
    assert danang_sample_size(4000, DaNangParams(rounding=Rounding.CEIL)).n == 260


@pytest.mark.parametrize(
    ("population", "margin"),
    [(1, 0.07), (2000, 0.07), (2001, 0.06), (4000, 0.06), (4001, 0.05), (6000, 0.05), (6001, 0.04),
     (10000, 0.04), (10001, 0.03), (10**7, 0.03)],
)  # fmt: skip
def test_margin_tiers_at_their_boundaries(population: int, margin: float) -> None:
    assert margin_for(population) == margin


@pytest.mark.parametrize(
    ("population", "expected"),
    [(0, 0), (1, 0), (2, 1), (10, 9), (2000, 185), (2001, 243), (4001, 363), (6000, 375), (6001, 566),
     (10000, 588), (10001, 1000), (10**9, 1111)],
)  # fmt: skip
def test_danang_values_hand_checked(population: int, expected: int) -> None:
    # N = 1 gives 0.995: the seed's floor reading asks for no survey at all (ceil asks for 1).
    assert danang_sample_size(population).n == expected


@given(st.integers(min_value=0, max_value=200_000), st.sampled_from(list(Rounding)))
def test_danang_never_above_population_and_monotone(population: int, rounding: Rounding) -> None:
    params = DaNangParams(rounding=rounding)
    here = danang_sample_size(population, params).n
    nxt = danang_sample_size(population + 1, params).n
    assert 0 <= here <= population
    # The seed's formula is monotone even across tiers: a larger unit gets a tighter margin, so n jumps
    # up (never down) at 2,000/2,001, 4,000/4,001, … (checked exhaustively at the boundaries below).
    assert nxt >= here


@pytest.mark.parametrize("boundary", [2000, 4000, 6000, 10000])
def test_danang_jumps_up_at_each_tier_boundary(boundary: int) -> None:
    assert danang_sample_size(boundary + 1).n > danang_sample_size(boundary).n


@given(st.integers(min_value=10_001, max_value=10**12))
def test_danang_top_tier_never_exceeds_one_over_e_squared(population: int) -> None:
    assert danang_sample_size(population).n <= 1111  # 1 / 0.03² = 1111.1


def test_danang_params_refuse_tiers_that_loosen_the_margin() -> None:
    with pytest.raises(ValidationError) as err:
        parse_policy(
            "danang_2223", {"tiers": [{"up_to": 10, "margin": 0.03}, {"up_to": None, "margin": 0.05}]}
        )
    assert err.value.field == "policy_params.tiers[1].margin"


@pytest.mark.parametrize(
    ("params", "field"),
    [({"rounding": "up"}, "policy_params.rounding"),
     ({"tiers": [{"up_to": None, "margin": 1.5}]}, "policy_params.tiers.0.margin"),
     ({"tiers": [{"up_to": 100, "margin": 0.05}]}, "policy_params.tiers[0].up_to"),
     ({"margin": 0.05}, "policy_params.margin")],
)  # fmt: skip
def test_danang_params_errors_name_the_field(params: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_policy("danang_2223", params)
    assert err.value.field == field


def test_unknown_policy_names_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        parse_policy("random_guess", {})
    assert err.value.field == "policy"
    assert "danang_2223" in str(err.value)


# --- Repeated submitters (seed 000, units whose submitters are only agencies) --------------------


def test_seed_example_ten_filings_then_one_gives_two_surveys() -> None:
    # "Sở A nộp hồ sơ tại Văn phòng UBND thành phố 10 lần trong 06 tháng đầu năm và 01 lần trong 06
    # tháng cuối năm thì số lượng khảo sát tối thiểu phải đạt là 02 lượt khảo sát."
    filings = [Submission("so-a", date(2025, m, 10)) for m in (1, 1, 2, 2, 3, 3, 4, 5, 6, 6)]
    filings.append(Submission("so-a", date(2025, 9, 1)))
    assert repeated_submitter_sample_size(filings).n == 2


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.dates(date(2024, 1, 1), date(2025, 12, 31))),
        max_size=60,
    )
)
def test_repeated_submitter_at_most_two_per_submitter_per_year(pairs: list[tuple[str, date]]) -> None:
    subs = [Submission(who, day) for who, day in pairs]
    n = repeated_submitter_sample_size(subs).n
    per_year = {(s.submitter, s.day.year) for s in subs}
    assert n <= 2 * len(per_year)
    assert n <= len(subs)
    assert n >= len({s.submitter for s in subs})  # everyone who filed is surveyed at least once


# --- Seed 003: at least 200 and 30 % for units of 200–1,000 dossiers ------------------------------


@pytest.mark.parametrize(
    ("population", "expected"), [(200, 200), (500, 200), (666, 200), (667, 201), (700, 210), (1000, 300)]
)
def test_seed003_takes_the_larger_of_200_and_30_percent(population: int, expected: int) -> None:
    assert seed003_sample_size(population).n == expected


def test_seed003_outside_the_range() -> None:
    assert seed003_sample_size(150).n == 150  # below: every dossier (default reading)
    with pytest.raises(PolicyNotApplicable):
        seed003_sample_size(150, Seed003Params(below_range="refuse"))
    with pytest.raises(PolicyNotApplicable) as err:
        seed003_sample_size(1001)
    assert "1001" in str(err.value)
    assert seed003_sample_size(2000, Seed003Params(above_range="percent")).n == 600


@given(st.integers(min_value=0, max_value=1000))
def test_seed003_monotone_and_bounded(population: int) -> None:
    here = seed003_sample_size(population).n
    assert here <= population
    assert seed003_sample_size(population + 1).n >= here if population < 1000 else True
    if 200 <= population <= 1000:
        assert here >= 200 and here * 10 >= 3 * population


def test_seed003_percent_is_exact_not_float() -> None:
    # 0.3 * 1000 is 300.00000000000006 in floating point; the policy must not demand 301.
    assert seed003_sample_size(1000).n == 300


# --- Seed 002: a fixed yearly total split by dossier count -----------------------------------------


def test_fixed_total_largest_remainder_adds_up() -> None:
    parts = allocate_fixed_total(10_000, {"a": 4000, "b": 3000, "c": 3001, "d": 20000})
    assert sum(parts.values()) == 10_000
    assert parts == {"a": 1333, "b": 1000, "c": 1000, "d": 6667}


def test_fixed_total_never_above_a_units_population() -> None:
    assert allocate_fixed_total(10_000, {"a": 10, "b": 20}) == {"a": 10, "b": 20}


@given(
    st.integers(min_value=0, max_value=50_000),
    st.dictionaries(st.integers(0, 60), st.integers(0, 20_000), min_size=1, max_size=30),
)
def test_fixed_total_properties(total: int, pops: dict[int, int]) -> None:
    parts = allocate_fixed_total(total, pops)
    assert sum(parts.values()) == min(total, sum(pops.values()))
    grand = sum(pops.values())
    for key, pop in pops.items():
        assert 0 <= parts[key] <= pop
        if grand:
            quota = Fraction(total * pop, grand) if grand > total else Fraction(pop)
            assert abs(parts[key] - quota) < 1  # each part is its quota rounded down or up


def test_fixed_total_params_are_validated() -> None:
    with pytest.raises(ValidationError) as err:
        parse_policy("fixed_total", {"total": 0})
    assert err.value.field == "policy_params.total"


# --- A campaign's targets under each policy ------------------------------------------------------


def test_compute_targets_uses_repeated_submitter_rule_for_organisation_units() -> None:
    kind, params = parse_policy("danang_2223", {})
    units = {
        1: UnitPopulation(4000),
        2: UnitPopulation(
            30,
            organisations_only=True,
            submissions=tuple(Submission(f"org{i % 5}", date(2025, 3, 1)) for i in range(30)),
        ),
    }
    targets = compute_targets(kind, params, units)
    assert targets[1].n == 259
    assert targets[2].n == 5


def test_compute_targets_fixed_total_and_not_applicable_names_the_unit() -> None:
    targets = compute_targets(
        PolicyKind.FIXED_TOTAL, FixedTotalParams(total=100), {1: UnitPopulation(300), 2: UnitPopulation(100)}
    )
    assert {k: v.n for k, v in targets.items()} == {1: 75, 2: 25}
    with pytest.raises(PolicyNotApplicable) as err:
        compute_targets(PolicyKind.SEED003, Seed003Params(), {7: UnitPopulation(5000)})
    assert "unit 7" in str(err.value)
