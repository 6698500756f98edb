"""Pydantic schemas of the campaign domain: what an operator submits and what the API returns."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from callcenter.campaign.errors import field_error


class CampaignSpec(BaseModel):
    """A new campaign: scope, sample-size policy, calling period and rules."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Khảo sát quý IV/2026",
                    "policy": "danang_2223",
                    "policy_params": {"rounding": "floor"},
                    "returned_from": "2026-10-01",
                    "returned_to": "2026-12-31",
                    "agencies": ["SO-TU-PHAP", "SO-XAY-DUNG"],
                    "fields": None,
                    "starts_at": "2027-01-04T08:00:00+07:00",
                    "ends_at": "2027-01-29T17:00:00+07:00",
                    "calling_rules": {"saturday_morning": False},
                }
            ]
        },
    )

    name: Annotated[str, Field(min_length=1, max_length=256)]
    policy: str = Field("danang_2223", description="danang_2223 | repeated_submitter | seed003 | fixed_total")
    policy_params: dict[str, Any] = Field(default_factory=dict)
    returned_from: date = Field(description="Scope: dossiers whose result was returned on or after this day")
    returned_to: date = Field(description="… and on or before this day (local dates)")
    agencies: list[str] | None = Field(None, description="Agency codes; null = every agency with dossiers")
    fields: list[str] | None = Field(None, description="Field (lĩnh vực) codes; null = every field")
    starts_at: AwareDatetime = Field(description="Calls allowed from (timezone-aware)")
    ends_at: AwareDatetime = Field(description="Nothing is called after this instant")
    calling_rules: dict[str, Any] = Field(default_factory=dict, description="Windows, retries, caps")
    seed: Annotated[int, Field(ge=0, lt=2**62)] | None = Field(None, description="Random draw seed")


def parse_spec(raw: dict[str, Any]) -> CampaignSpec:
    """Validate a campaign spec given as plain data (CLI, files); errors name the field."""
    try:
        return CampaignSpec.model_validate(raw)
    except PydanticValidationError as exc:
        raise field_error(exc, "campaign") from None


class CampaignOut(BaseModel):
    id: int
    name: str
    status: str
    policy: str
    policy_params: dict[str, Any]
    returned_from: date
    returned_to: date
    field_ids: list[int] | None
    starts_at: datetime
    ends_at: datetime
    calling_rules: dict[str, Any]
    seed: int
    created_by: str
    created_at: datetime
    updated_at: datetime

    model_config = ConfigDict(from_attributes=True)


class AgencyProgressOut(BaseModel):
    agency_id: int
    agency_code: str
    agency_name: str
    population: int
    population_late_overdue: int
    eligible: int
    eligible_late_overdue: int
    target: int
    drawn: int
    completed: int
    completed_late_overdue: int
    in_progress: int
    queued: int
    ended_without_survey: int
    attempts: int
    attempts_by_outcome: dict[str, int]
    exhausted_at: datetime | None
    eta: datetime | None
    note: str


class CampaignReportOut(BaseModel):
    campaign: CampaignOut
    agencies: list[AgencyProgressOut]
    target: int
    completed: int
    in_progress: int
    completion_rate_per_open_hour: float
    eta: datetime | None
    note: str


class EventOut(BaseModel):
    from_status: str | None
    to_status: str
    actor: str
    at: datetime
    note: str | None

    model_config = ConfigDict(from_attributes=True)


class TransitionIn(BaseModel):
    note: str | None = Field(None, max_length=1000)


class HolidayIn(BaseModel):
    day: date
    name: Annotated[str, Field(min_length=1, max_length=128)]


class HolidayOut(BaseModel):
    day: date
    name: str
    kind: str

    model_config = ConfigDict(from_attributes=True)


class OptOutImportOut(BaseModel):
    rows: int
    added: int
    already_listed: int
    errors: list[str]
