"""The analysis domain's tables: alerts and their subscriptions, staff phones, phúc tra samples, anomalies."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.core.db import AwareDateTime, Base, BigId
from callcenter.dialer.models import CallAttempt
from callcenter.intake.models import Dossier
from callcenter.ivr.models import SurveyResponse


class NotifierKind(enum.StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"


class DeliveryMode(enum.StrEnum):
    IMMEDIATE = "immediate"  # one message per unsatisfied answer, within seconds
    DIGEST = "digest"  # one message a day listing the day's unsatisfied answers


class AlertState(enum.StrEnum):
    """Delivery state of one alert; changed only by compare-and-set (see ``alerts.py``)."""

    PENDING = "pending"  # waiting for next_attempt_at (or for the digest)
    SENDING = "sending"  # claimed by one worker until lease_expires_at
    SENT = "sent"  # final
    FAILED = "failed"  # final: retries used up, or a permanent error
    # Final, never sent: its subscription was ended first (the reason is in last_error). An agency's
    # old address or a revoked webhook must not receive citizens' comments after the end.
    CANCELLED = "cancelled"


ALERT_TRANSITIONS: dict[AlertState, frozenset[AlertState]] = {
    # PENDING also covers a failed attempt waiting for its retry.
    AlertState.PENDING: frozenset({AlertState.SENDING, AlertState.CANCELLED}),
    # A lease that expired (worker died) is taken over directly: SENDING → SENDING; for an ended
    # subscription it is cancelled instead (SENDING → CANCELLED, only once the lease has expired).
    AlertState.SENDING: frozenset(
        {AlertState.SENT, AlertState.PENDING, AlertState.FAILED, AlertState.SENDING, AlertState.CANCELLED}
    ),
    AlertState.SENT: frozenset(),
    AlertState.FAILED: frozenset(),
    AlertState.CANCELLED: frozenset(),
}


class AlertSubscription(Base):
    """Where an agency wants its negative-answer alerts: a signed webhook or an e-mail address."""

    __tablename__ = "alert_subscriptions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    notifier: Mapped[str] = mapped_column(String(16))  # NotifierKind
    target: Mapped[str] = mapped_column(String(512))  # URL or e-mail address
    # The webhook's HMAC key, encrypted at rest like personal data.
    secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    mode: Mapped[str] = mapped_column(String(16))  # DeliveryMode
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime)


class Alert(Base):
    """One unsatisfied answer to be told to one subscription: at most one row, so never sent twice."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("response_id", "subscription_id"),
        Index("ix_alerts_state_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("survey_responses.id", ondelete="CASCADE"))
    subscription_id: Mapped[int] = mapped_column(ForeignKey("alert_subscriptions.id"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    state: Mapped[str] = mapped_column(String(16))  # AlertState
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(AwareDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(AwareDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(AwareDateTime)


class StaffPhone(Base):
    """A phone of an agency's own staff, by keyed hash only: answers from it are flagged."""

    __tablename__ = "staff_phones"
    __table_args__ = (UniqueConstraint("agency_id", "phone_hash"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(256))  # the imported file's name
    imported_at: Mapped[datetime] = mapped_column(AwareDateTime)


class ReverificationSample(Base):
    """A reproducible random re-check (phúc tra) sample of one agency's answers for a month or quarter."""

    __tablename__ = "reverification_samples"
    __table_args__ = (UniqueConstraint("agency_id", "period_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    period_key: Mapped[str] = mapped_column(String(16))  # 2026-07 or 2026-Q3
    seed: Mapped[int] = mapped_column(BigInteger)
    population: Mapped[int] = mapped_column(Integer)  # answers eligible for the draw
    size: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(AwareDateTime)


class ReverificationItem(Base):
    __tablename__ = "reverification_items"

    sample_id: Mapped[int] = mapped_column(
        ForeignKey("reverification_samples.id", ondelete="CASCADE"), primary_key=True
    )
    response_id: Mapped[int] = mapped_column(ForeignKey("survey_responses.id"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)


class AnomalyKind(enum.StrEnum):
    BURST = "burst"  # many answers for one agency in a short window
    REPEATED_PHONE = "repeated_phone"  # many answers from one phone
    STAFF_PHONE = "staff_phone"  # an answer from a phone of the agency's own staff


class Anomaly(Base):
    """An integrity flag for the verifying unit; detection is idempotent through the unique key."""

    __tablename__ = "anomalies"
    __table_args__ = (UniqueConstraint("kind", "agency_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # AnomalyKind
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    # What makes the flag unique: the window start, the phone hash (+ period) or the response id.
    key: Mapped[str] = mapped_column(String(160))
    window_start: Mapped[datetime] = mapped_column(AwareDateTime)
    window_end: Mapped[datetime] = mapped_column(AwareDateTime)
    count: Mapped[int] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    detected_at: Mapped[datetime] = mapped_column(AwareDateTime)


# Covering indexes the summaries need on other domains' tables, declared in one place and created by the
# analysis migration: each summary query then reads a narrow index instead of the wide rows (dossiers
# carry encrypted personal data). On SQLite the INCLUDE columns are ignored.
ANALYSIS_INDEXES = (
    Index(
        "ix_analysis_dossiers_returned",
        Dossier.returned_at,
        postgresql_include=["id", "agency_id", "field_id", "timeliness", "status"],
    ),
    Index(
        "ix_analysis_responses_answered",
        SurveyResponse.answered_at,
        postgresql_include=[
            "agency_id",
            "field_id",
            "channel",
            "status",
            "satisfied",
            "dossier_id",
            "dossier_timeliness",
        ],
    ),
    Index(
        "ix_analysis_attempts_created",
        CallAttempt.created_at,
        postgresql_include=["outcome", "dossier_id", "agency_id", "field_id"],
    ),
)
