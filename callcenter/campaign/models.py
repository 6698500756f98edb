"""Campaigns, their per-agency targets, the drawn call list and the holiday calendar."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.core.db import AwareDateTime, Base, BigId


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


CAMPAIGN_STATUS_LABELS_VI: dict[str, str] = {
    CampaignStatus.DRAFT: "bản nháp",
    CampaignStatus.SCHEDULED: "đã lên lịch",
    CampaignStatus.RUNNING: "đang gọi",
    CampaignStatus.PAUSED: "tạm dừng",
    CampaignStatus.COMPLETED: "đã hoàn thành",
    CampaignStatus.CANCELLED: "đã hủy",
}


class TargetState(enum.StrEnum):
    QUEUED = "queued"  # waiting for next_attempt_at
    IN_CALL = "in_call"  # an attempt is being made right now
    COMPLETED = "completed"  # survey completed
    EXHAUSTED = "exhausted"  # retries used up without a completed survey
    OPTED_OUT = "opted_out"  # the citizen opted out (here or elsewhere)
    SKIPPED = "skipped"  # no longer eligible (surveyed elsewhere, cap, campaign ended)


class Stratum(enum.StrEnum):
    LATE_OVERDUE = "late_overdue"  # over-sampled: the seed's focus
    ON_TIME = "on_time"


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), index=True)  # CampaignStatus
    policy: Mapped[str] = mapped_column(
        String(32)
    )  # danang_2223 | seed003 | fixed_total | repeated_submitter
    policy_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    returned_from: Mapped[date] = mapped_column(Date)  # scope: dossiers returned in [from, to]
    returned_to: Mapped[date] = mapped_column(Date)
    field_ids: Mapped[list[int] | None] = mapped_column(JSON)  # None = every field
    starts_at: Mapped[datetime] = mapped_column(AwareDateTime)  # calling allowed from
    ends_at: Mapped[datetime] = mapped_column(AwareDateTime)  # nothing is called after this
    calling_rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # windows, retries, caps
    seed: Mapped[int] = mapped_column(BigId)  # the random draw is reproducible from it
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(AwareDateTime)
    updated_at: Mapped[datetime] = mapped_column(AwareDateTime)


class CampaignEvent(Base):
    """Each lifecycle change, with who and when."""

    __tablename__ = "campaign_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(AwareDateTime)
    note: Mapped[str | None] = mapped_column(Text)


class CampaignAgencyTarget(Base):
    """Per agency: the population N, the policy's n of completed surveys, and how far the draw went."""

    __tablename__ = "campaign_agency_targets"
    __table_args__ = (UniqueConstraint("campaign_id", "agency_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    population: Mapped[int] = mapped_column(Integer)  # dossiers in scope (N)
    eligible: Mapped[int] = mapped_column(Integer)  # of which callable
    eligible_late_overdue: Mapped[int] = mapped_column(Integer, default=0)
    population_late_overdue: Mapped[int] = mapped_column(Integer, default=0)
    target: Mapped[int] = mapped_column(Integer)  # completed surveys wanted (n)
    drawn: Mapped[int] = mapped_column(Integer, default=0)
    exhausted_at: Mapped[datetime | None] = mapped_column(AwareDateTime)  # no eligible dossier left


class CallTarget(Base):
    """One drawn dossier of a campaign: whom to call, in what order, and when next."""

    __tablename__ = "call_targets"
    __table_args__ = (
        UniqueConstraint("campaign_id", "dossier_id"),
        # In the dialer's claim order (campaign_0003): the claim reads the first entries, no sort.
        Index("ix_call_targets_due", "state", "next_attempt_at", "draw_rank", "id"),
        Index("ix_call_targets_campaign_agency", "campaign_id", "agency_id", "state"),
        # "is anything of this campaign still live?" after each result, by ordered lookup (campaign_0004)
        Index("ix_call_targets_campaign_state", "campaign_id", "state", "id"),
        # "one completed survey per dossier ever" is checked across campaigns by dossier
        Index("ix_call_targets_dossier_state", "dossier_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    stratum: Mapped[str] = mapped_column(String(16))  # Stratum
    draw_rank: Mapped[int] = mapped_column(Integer)  # order within the agency's draw
    wave: Mapped[int] = mapped_column(Integer, default=0)  # 0 = first draw, 1+ = replacement draws
    state: Mapped[str] = mapped_column(String(16))  # TargetState
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    attempts_by_outcome: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    next_attempt_at: Mapped[datetime | None] = mapped_column(AwareDateTime)
    updated_at: Mapped[datetime] = mapped_column(AwareDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(AwareDateTime)


class PhoneCallGuard(Base):
    """Per phone, across campaigns: the call in progress (one at a time) and today's attempt count.

    Both caps are enforced by one compare-and-set ``UPDATE`` on this row, so two dialer workers can
    never both call the same number, nor exceed the daily cap between them.
    """

    __tablename__ = "phone_call_guards"

    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    active_target_id: Mapped[int | None] = mapped_column(BigId)  # call_targets.id now IN_CALL
    day: Mapped[date | None] = mapped_column(Date)  # local (Asia/Ho_Chi_Minh) day of attempts_today
    attempts_today: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(AwareDateTime)


class Holiday(Base):
    """A day with no calls (public holidays, lunar ones included); operators may edit the calendar."""

    __tablename__ = "holidays"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # solar | lunar | custom
