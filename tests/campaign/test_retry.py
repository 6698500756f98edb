"""Per-outcome retry rules, moved into open windows, never past the campaign's end."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from callcenter.campaign.models import TargetState
from callcenter.campaign.retry import RetryKey, RetryPolicy, RetryRule, decide, retry_key
from callcenter.campaign.windows import CallingCalendar
from callcenter.core.clock import VN_TZ, ManualClock
from callcenter.core.outcomes import CallOutcome, SurveyOutcome

CAL = CallingCalendar()
END = datetime(2026, 12, 31, 17, 0, tzinfo=VN_TZ)


def local(d: int, hh: int, mm: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, d, hh, mm, tzinfo=VN_TZ)


def run(
    outcome: CallOutcome,
    survey: SurveyOutcome,
    now: datetime,
    *,
    by_key: dict[str, int] | None = None,
    total: int = 1,
    policy: RetryPolicy | None = None,
    ends_at: datetime = END,
):  # type: ignore[no-untyped-def]
    key = retry_key(outcome, survey)
    counts = dict(by_key or ({key.value: 1} if key else {}))
    return decide(outcome=outcome, survey=survey, attempts_by_key=counts, attempts_total=total, now=now,
                  policy=policy or RetryPolicy(), calendar=CAL, ends_at=ends_at)  # fmt: skip


@pytest.mark.parametrize(
    ("outcome", "survey", "key"),
    [(CallOutcome.BUSY, SurveyOutcome.NONE, RetryKey.BUSY),
     (CallOutcome.NO_ANSWER, SurveyOutcome.NONE, RetryKey.NO_ANSWER),
     (CallOutcome.REJECTED, SurveyOutcome.NONE, RetryKey.REJECTED),
     (CallOutcome.MACHINE, SurveyOutcome.NONE, RetryKey.MACHINE),
     (CallOutcome.CONGESTION, SurveyOutcome.NONE, RetryKey.CONGESTION),
     (CallOutcome.INVALID_NUMBER, SurveyOutcome.NONE, RetryKey.INVALID_NUMBER),
     (CallOutcome.DROPPED, SurveyOutcome.NONE, RetryKey.DROPPED),
     (CallOutcome.DROPPED, SurveyOutcome.PARTIAL, RetryKey.PARTIAL),
     (CallOutcome.ANSWERED, SurveyOutcome.PARTIAL, RetryKey.PARTIAL),
     (CallOutcome.ANSWERED, SurveyOutcome.NO_INPUT, RetryKey.NO_INPUT)],
)  # fmt: skip
def test_outcomes_map_to_their_rule(outcome: CallOutcome, survey: SurveyOutcome, key: RetryKey) -> None:
    assert retry_key(outcome, survey) == key


def test_completed_and_opted_out_end_the_target() -> None:
    assert run(CallOutcome.ANSWERED, SurveyOutcome.COMPLETED, local(20, 9)).state == TargetState.COMPLETED
    assert run(CallOutcome.DROPPED, SurveyOutcome.COMPLETED, local(20, 9)).state == TargetState.COMPLETED
    assert run(CallOutcome.ANSWERED, SurveyOutcome.OPTED_OUT, local(20, 9)).state == TargetState.OPTED_OUT


def test_busy_is_retried_after_its_delay_inside_the_window() -> None:
    decision = run(CallOutcome.BUSY, SurveyOutcome.NONE, local(20, 9))
    assert decision.state == TargetState.QUEUED
    assert decision.next_attempt_at == local(20, 9, 20)


def test_retry_falling_into_lunch_moves_to_the_afternoon_window() -> None:
    clock = ManualClock(local(20, 11, 20))
    decision = run(CallOutcome.BUSY, SurveyOutcome.NONE, clock.now())  # 11:40 is lunch
    assert decision.next_attempt_at == local(20, 13, 30)


def test_retry_falling_in_the_evening_moves_past_the_weekend() -> None:
    decision = run(CallOutcome.NO_ANSWER, SurveyOutcome.NONE, local(20, 15, 30))  # +3 h = Friday 18:30
    assert decision.next_attempt_at == local(23, 8, 0)


def test_each_outcome_has_its_own_maximum() -> None:
    assert run(CallOutcome.BUSY, SurveyOutcome.NONE, local(20, 9), by_key={"busy": 3}, total=3).state == (
        TargetState.QUEUED
    )
    assert run(CallOutcome.BUSY, SurveyOutcome.NONE, local(20, 9), by_key={"busy": 4}, total=4).state == (
        TargetState.EXHAUSTED
    )
    assert run(CallOutcome.INVALID_NUMBER, SurveyOutcome.NONE, local(20, 9)).state == TargetState.EXHAUSTED


def test_total_attempt_cap_applies_across_outcomes() -> None:
    policy = RetryPolicy(max_attempts_total=3)
    decision = run(CallOutcome.BUSY, SurveyOutcome.NONE, local(20, 9), by_key={"busy": 1}, total=3,
                   policy=policy)  # fmt: skip
    assert decision.state == TargetState.EXHAUSTED


def test_custom_rule_overrides_only_its_outcome() -> None:
    policy = RetryPolicy.model_validate({"rules": {"busy": {"delay_minutes": 5, "max_attempts": 9}}})
    assert policy.rule_for(RetryKey.BUSY) == RetryRule(delay_minutes=5, max_attempts=9)
    assert policy.rule_for(RetryKey.NO_ANSWER).delay_minutes == 180
    assert run(CallOutcome.BUSY, SurveyOutcome.NONE, local(20, 9), policy=policy).next_attempt_at == local(
        20, 9, 5
    )


def test_nothing_is_scheduled_after_the_campaign_ends() -> None:
    ends = local(20, 16, 0)
    decision = run(CallOutcome.NO_ANSWER, SurveyOutcome.NONE, local(20, 14, 0), ends_at=ends)
    assert decision.state == TargetState.SKIPPED
    assert decision.next_attempt_at is None
    still_ok = run(CallOutcome.BUSY, SurveyOutcome.NONE, local(20, 14, 0), ends_at=ends)
    assert still_ok.next_attempt_at == local(20, 14, 20) < ends


def test_retry_time_is_always_open_and_after_the_delay() -> None:
    clock = ManualClock(local(16, 7, 0))
    policy = RetryPolicy()
    while clock.now() < local(23, 7, 0):
        for key in RetryKey:
            outcome = (
                CallOutcome.ANSWERED
                if key in (RetryKey.PARTIAL, RetryKey.NO_INPUT)
                else CallOutcome(key.value)
            )
            survey = {RetryKey.PARTIAL: SurveyOutcome.PARTIAL, RetryKey.NO_INPUT: SurveyOutcome.NO_INPUT}.get(
                key, SurveyOutcome.NONE
            )
            decision = run(outcome, survey, clock.now(), by_key={key.value: 0})
            if decision.state == TargetState.QUEUED:
                assert decision.next_attempt_at is not None
                assert CAL.is_open(decision.next_attempt_at)
                delay = timedelta(minutes=policy.rule_for(key).delay_minutes)
                assert decision.next_attempt_at >= clock.now() + delay
        clock.advance(timedelta(minutes=47))
