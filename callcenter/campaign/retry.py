"""What happens to a call target after an attempt: done, retry later (when), or give up. Pure.

Each outcome has its own delay and maximum (busy numbers are retried soon, unanswered ones later, a
rejected call once the next day, an invalid number never). A retry time outside the calling windows
moves to the next open window; a retry that would fall after the campaign's end is not scheduled.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from callcenter.campaign.models import TargetState
from callcenter.campaign.windows import CallingCalendar
from callcenter.core.outcomes import CallOutcome, SurveyOutcome


class RetryKey(enum.StrEnum):
    """The outcome classes that retry rules are written for."""

    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    FAILED = "failed"
    MACHINE = "machine"
    DROPPED = "dropped"  # answered, then cut before the survey finished
    CONGESTION = "congestion"
    INVALID_NUMBER = "invalid_number"
    PARTIAL = "partial"  # the citizen hung up midway through the questions
    NO_INPUT = "no_input"  # answered but never gave a usable answer


class RetryRule(BaseModel):
    """Wait ``delay_minutes`` before the next try; give up after ``max_attempts`` of this outcome."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delay_minutes: Annotated[int, Field(ge=1, le=14 * 24 * 60)]
    max_attempts: Annotated[int, Field(ge=1, le=20)]


DEFAULT_RETRY_RULES: dict[RetryKey, RetryRule] = {
    RetryKey.BUSY: RetryRule(delay_minutes=20, max_attempts=4),
    RetryKey.NO_ANSWER: RetryRule(delay_minutes=180, max_attempts=3),
    RetryKey.REJECTED: RetryRule(delay_minutes=24 * 60, max_attempts=2),
    RetryKey.FAILED: RetryRule(delay_minutes=30, max_attempts=3),
    RetryKey.MACHINE: RetryRule(delay_minutes=240, max_attempts=2),
    RetryKey.DROPPED: RetryRule(delay_minutes=60, max_attempts=2),
    RetryKey.CONGESTION: RetryRule(delay_minutes=10, max_attempts=5),
    RetryKey.INVALID_NUMBER: RetryRule(delay_minutes=60, max_attempts=1),  # 1 = never retried
    RetryKey.PARTIAL: RetryRule(delay_minutes=24 * 60, max_attempts=2),
    RetryKey.NO_INPUT: RetryRule(delay_minutes=24 * 60, max_attempts=2),
}


class RetryPolicy(BaseModel):
    """Per-outcome rules (missing ones take the defaults) and a cap on attempts per target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: dict[RetryKey, RetryRule] = Field(default_factory=lambda: dict(DEFAULT_RETRY_RULES))
    max_attempts_total: Annotated[int, Field(ge=1, le=30)] = 6

    @model_validator(mode="after")
    def _fill_defaults(self) -> RetryPolicy:
        for key, rule in DEFAULT_RETRY_RULES.items():
            self.rules.setdefault(key, rule)
        return self

    def rule_for(self, key: RetryKey) -> RetryRule:
        return self.rules[key]


def retry_key(outcome: CallOutcome, survey: SurveyOutcome) -> RetryKey | None:
    """The rule an attempt falls under; ``None`` when it ended the target (completed or opted out)."""
    if survey in (SurveyOutcome.COMPLETED, SurveyOutcome.OPTED_OUT):
        return None
    if outcome == CallOutcome.ANSWERED:
        return RetryKey.PARTIAL if survey == SurveyOutcome.PARTIAL else RetryKey.NO_INPUT
    if outcome == CallOutcome.DROPPED and survey == SurveyOutcome.PARTIAL:
        return RetryKey.PARTIAL
    return RetryKey(outcome.value)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    state: TargetState
    next_attempt_at: datetime | None
    reason: str
    key: RetryKey | None


def decide(
    *,
    outcome: CallOutcome,
    survey: SurveyOutcome,
    attempts_by_key: Mapping[str, int],
    attempts_total: int,
    now: datetime,
    policy: RetryPolicy,
    calendar: CallingCalendar,
    ends_at: datetime,
) -> RetryDecision:
    """Decide a target's next state after one attempt.

    ``attempts_by_key`` and ``attempts_total`` already include this attempt.
    """
    if survey == SurveyOutcome.COMPLETED:
        return RetryDecision(TargetState.COMPLETED, None, "survey completed", None)
    if survey == SurveyOutcome.OPTED_OUT:
        return RetryDecision(TargetState.OPTED_OUT, None, "citizen opted out", None)
    key = retry_key(outcome, survey)
    assert key is not None
    rule = policy.rule_for(key)
    if attempts_by_key.get(key.value, 0) >= rule.max_attempts:
        return RetryDecision(
            TargetState.EXHAUSTED, None, f"{key.value}: {rule.max_attempts} attempt(s) used", key
        )
    if attempts_total >= policy.max_attempts_total:
        return RetryDecision(
            TargetState.EXHAUSTED, None, f"{policy.max_attempts_total} attempts in total used", key
        )
    wanted = now + timedelta(minutes=rule.delay_minutes)
    when = calendar.next_open(wanted)
    if when is None or when >= ends_at:
        return RetryDecision(
            TargetState.SKIPPED, None, "no calling window left before the campaign ends", key
        )
    return RetryDecision(TargetState.QUEUED, when, f"{key.value}: retry after {rule.delay_minutes} min", key)
