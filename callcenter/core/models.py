"""Tables every domain shares: the do-not-call (opt-out) registry and the personal-data audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.core.db import AwareDateTime, Base, BigId


class OptOut(Base):
    """A phone (by keyed hash) that must never be called again by any campaign."""

    __tablename__ = "opt_outs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # "ivr_key" (pressed 0 and confirmed), "operator_list" (imported do-not-call list), "api"
    source: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime)


class AuditLog(Base):
    """Every access to personal data: who, what, when, why."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(AwareDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(256))
    detail: Mapped[str | None] = mapped_column(Text)


class ApiKey(Base):
    """An HTTP API key. Only its SHA-256 is stored; the role bounds what it may see."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    # home_affairs | agency | verifier | operator | admin
    role: Mapped[str] = mapped_column(String(32))
    # For the agency role: the only agency whose results this key may read (agencies.id).
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    created_at: Mapped[datetime] = mapped_column(AwareDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(AwareDateTime)
