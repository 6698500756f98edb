"""A campaign's calling rules (``campaigns.calling_rules``): windows, retries and frequency caps.

Stored as JSON, validated with pydantic; every field has a sane default so ``{}`` is a valid rule set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from callcenter.campaign.errors import field_error
from callcenter.campaign.retry import RetryPolicy
from callcenter.campaign.windows import DEFAULT_WINDOWS, CallingCalendar, WindowSpec, windows_with_saturday


class FrequencyCaps(BaseModel):
    """Limits per phone number, across every campaign."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # One call at a time per phone is not a setting: it always holds.
    max_attempts_per_phone_per_day: Annotated[int, Field(ge=1, le=10)] = 2
    # No new survey for a phone that completed one this many days ago (any channel, any campaign).
    cooloff_days: Annotated[int, Field(ge=0, le=3650)] = 90
    # A target whose phone is busy with another call is looked at again this much later.
    phone_busy_recheck_minutes: Annotated[int, Field(ge=1, le=240)] = 10


class CallingRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    windows: tuple[WindowSpec, ...] = DEFAULT_WINDOWS
    saturday_morning: bool = False
    skip_holidays: bool = True
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    caps: FrequencyCaps = Field(default_factory=FrequencyCaps)
    # The late/overdue stratum's share of each agency's target (over-sampled; analysis weights back).
    late_overdue_share: Annotated[float, Field(ge=0, le=1)] = 0.5

    def calendar(self, holidays: Iterable[date] = ()) -> CallingCalendar:
        """The pure calendar these rules describe, given the holiday days to skip."""
        return CallingCalendar(
            windows=windows_with_saturday(self.windows, self.saturday_morning),
            holidays=frozenset(holidays) if self.skip_holidays else frozenset(),
        )


def parse_rules(raw: Mapping[str, Any] | None) -> CallingRules:
    """Validate a calling-rules document; an error names the field (``calling_rules.retry...``)."""
    try:
        return CallingRules.model_validate(dict(raw or {}))
    except PydanticValidationError as exc:
        raise field_error(exc, "calling_rules") from None
