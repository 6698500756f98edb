"""Call attempts: one row per physical call, moved through an explicit state machine by compare-and-set."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.core.db import AwareDateTime, Base, BigId


class AttemptStatus(enum.StrEnum):
    QUEUED = "queued"  # created by the releaser, task sent
    CLAIMED = "claimed"  # a worker holds it and a channel lease
    DIALING = "dialing"  # originate sent to the trunk
    RINGING = "ringing"
    IN_SURVEY = "in_survey"  # answered; the IVR runs
    FINISHED = "finished"  # final: outcome set
    CANCELLED = "cancelled"  # final: never dialled (campaign stopped, opted out meanwhile)


class CallAttempt(Base):
    __tablename__ = "call_attempts"
    # Attempts not yet final are found by ``ended_at IS NULL`` (set exactly when an attempt becomes
    # final, see callcenter.dialer.state) through this small partial index. No index holds a column
    # that changes while a call goes on (status, updated_at, dialed_at, answered_at …), so those
    # changes are HOT updates on PostgreSQL; dialer_0003 also leaves free space in each page for them.
    __table_args__ = (
        Index(
            "ix_call_attempts_active",
            "id",
            postgresql_where=text("ended_at IS NULL"),
            sqlite_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("call_targets.id"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"))
    # The dossier's agency and field when the attempt was created, copied so that the summaries group
    # attempts without joining every dossier (issue 7). An import that moves a dossier to another
    # agency or field rewrites these too (callcenter.analysis.dossier_copies).
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    field_id: Mapped[int] = mapped_column(ForeignKey("fields.id"))
    trunk: Mapped[str | None] = mapped_column(String(32))  # simulator | asterisk | twilio
    server: Mapped[str | None] = mapped_column(String(64))  # which Asterisk server or Twilio account
    channel_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # AMI ChannelId / Twilio CallSid
    status: Mapped[str] = mapped_column(String(16))  # AttemptStatus
    outcome: Mapped[str | None] = mapped_column(String(16))  # CallOutcome, set exactly when FINISHED
    survey_outcome: Mapped[str | None] = mapped_column(String(16))  # SurveyOutcome, once finished
    hangup_cause: Mapped[int | None] = mapped_column(Integer)  # Q.850
    detail: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(AwareDateTime)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime)
    updated_at: Mapped[datetime] = mapped_column(AwareDateTime)
    dialed_at: Mapped[datetime | None] = mapped_column(AwareDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(AwareDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(AwareDateTime)  # set when final (FINISHED, CANCELLED)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
