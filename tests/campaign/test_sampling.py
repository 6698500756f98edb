"""The pure draw: strata, quotas, one phone per campaign, reproducibility."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callcenter.campaign.models import Stratum
from callcenter.campaign.sampling import Candidate, draw, late_quota, rank_key


def pool(late: int, on_time: int, *, phones: int | None = None) -> list[Candidate]:
    total = late + on_time
    return [Candidate(i, 1, f"p{i % (phones or total)}", i < late) for i in range(total)]


def test_late_stratum_is_over_sampled_up_to_its_quota() -> None:
    picks = draw(pool(30, 270), seed=1, want=40, late_wanted=late_quota(40, 0.5), taken_phones=set())
    strata = [p.stratum for p in picks]
    assert strata.count(Stratum.LATE_OVERDUE) == 20  # 50 % of the sample vs 10 % of the population
    assert strata[:20] == [Stratum.LATE_OVERDUE] * 20  # called first


def test_a_short_stratum_is_filled_from_the_other() -> None:
    picks = draw(pool(5, 10), seed=1, want=12, late_wanted=6, taken_phones=set())
    assert len(picks) == 12
    assert sum(p.stratum == Stratum.LATE_OVERDUE for p in picks) == 5
    picks = draw(pool(10, 3), seed=1, want=8, late_wanted=2, taken_phones=set())
    assert sum(p.stratum == Stratum.LATE_OVERDUE for p in picks) == 5  # on-time ran dry: late fills in


def test_rank_key_is_reproducible_and_seed_dependent() -> None:
    assert rank_key(7, 123) == rank_key(7, 123)
    assert rank_key(7, 123) != rank_key(8, 123)


@given(
    st.integers(0, 40),
    st.integers(0, 40),
    st.integers(1, 30),
    st.integers(0, 60),
    st.floats(0, 1),
    st.integers(0, 2**62),
)
def test_draw_properties(late: int, on_time: int, phones: int, want: int, share: float, seed: int) -> None:
    candidates = pool(late, on_time, phones=phones)
    taken: set[str] = set()
    picks = draw(candidates, seed=seed, want=want, late_wanted=late_quota(want, share), taken_phones=taken)
    assert len(picks) <= want
    assert len({p.phone_hash for p in picks}) == len(picks)  # one call per phone per campaign
    assert len(picks) == min(want, len({c.phone_hash for c in candidates}))  # never short while phones remain
    assert taken == {p.phone_hash for p in picks}
    again = draw(
        list(reversed(candidates)),
        seed=seed,
        want=want,
        late_wanted=late_quota(want, share),
        taken_phones=set(),
    )
    assert again == picks  # the order rows arrive in does not matter
