"""Survey responses from every channel: calls (this system), the web form, paper and independent surveys.

``attempt_id`` refers to ``call_attempts.id`` without a foreign key: the IVR sits below the dialer and
knows an attempt only as an opaque id handed over by the channel.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callcenter.core.db import AwareDateTime, Base, BigId


class ResponseChannel(enum.StrEnum):
    CALL = "call"
    WEB = "web"
    PAPER = "paper"
    INDEPENDENT = "independent"


class ResponseStatus(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    PARTIAL = "partial"  # the citizen hung up midway; what was answered is kept
    COMPLETED = "completed"
    OPTED_OUT = "opted_out"


class SurveyResponse(Base):
    __tablename__ = "survey_responses"
    __table_args__ = (
        UniqueConstraint("channel", "external_ref"),
        Index("ix_survey_responses_agency_answered", "agency_id", "answered_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # ResponseChannel
    attempt_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    external_ref: Mapped[str | None] = mapped_column(String(128))  # id in a web/paper import
    dossier_id: Mapped[int | None] = mapped_column(ForeignKey("dossiers.id"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    field_id: Mapped[int | None] = mapped_column(ForeignKey("fields.id"), index=True)
    # The dossier's timeliness (intake Timeliness) when the response was created, copied so that the
    # summaries split answers into the on-time and late/overdue strata without joining every dossier
    # (issue 7); NULL for an answer with no dossier. An import that corrects
    # the dossier rewrites it, with agency_id and field_id (callcenter.analysis.dossier_copies).
    dossier_timeliness: Mapped[str | None] = mapped_column(String(16))
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    questionnaire_version: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # ResponseStatus
    satisfied: Mapped[bool | None] = mapped_column(Boolean)
    answered_via: Mapped[str | None] = mapped_column(String(16))  # dtmf | speech | mixed | web | paper
    comment_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # transcript, encrypted
    recording_ref: Mapped[str | None] = mapped_column(String(512))  # where the (encrypted) audio lies
    comment_status: Mapped[str] = mapped_column(String(16), default="none")  # none|pending|done|failed
    started_at: Mapped[datetime] = mapped_column(AwareDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(AwareDateTime)  # the satisfaction answer
    completed_at: Mapped[datetime | None] = mapped_column(AwareDateTime)

    reasons: Mapped[list[ResponseReason]] = relationship(
        back_populates="response", cascade="all, delete-orphan", lazy="selectin"
    )


class ResponseReason(Base):
    """One reason for dissatisfaction (questionnaire code 1..n) given in a response."""

    __tablename__ = "response_reasons"

    response_id: Mapped[int] = mapped_column(
        ForeignKey("survey_responses.id", ondelete="CASCADE"), primary_key=True
    )
    reason_code: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)
    source: Mapped[str] = mapped_column(String(16))  # dtmf | speech | classifier | web | paper

    response: Mapped[SurveyResponse] = relationship(back_populates="reasons")
