"""Agencies, fields (lĩnh vực) and dossiers, with personal data encrypted at rest."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.core.db import AwareDateTime, Base, BigId


class DossierStatus(enum.StrEnum):
    RECEIVED = "received"  # accepted, being processed
    RETURNED = "returned"  # result handed back to the submitter
    CANCELLED = "cancelled"  # withdrawn or rejected


class Timeliness(enum.StrEnum):
    PENDING = "pending"  # not returned, not yet due
    ON_TIME = "on_time"  # returned on or before the due time
    LATE = "late"  # returned after the due time (trễ hẹn)
    OVERDUE = "overdue"  # past due and still not returned (quá hạn)
    CANCELLED = "cancelled"  # cancelled (withdrawn or rejected) without a result: no deadline applies


class Agency(Base):
    __tablename__ = "agencies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    # Units whose submitters are only other agencies use the repeated-submitter sampling rule.
    organisations_only: Mapped[bool] = mapped_column(Boolean, default=False)


class Field(Base):
    __tablename__ = "fields"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(256))


class Dossier(Base):
    """One administrative dossier (hồ sơ) as the one-stop system knows it."""

    __tablename__ = "dossiers"
    __table_args__ = (
        UniqueConstraint("source", "code"),
        Index("ix_dossiers_agency_returned", "agency_id", "returned_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(128))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    field_id: Mapped[int] = mapped_column(ForeignKey("fields.id"), index=True)
    procedure_name: Mapped[str | None] = mapped_column(Text)
    submitter_name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    phone_enc: Mapped[bytes] = mapped_column(LargeBinary)
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    phone_kind: Mapped[str] = mapped_column(String(16))  # mobile | landline
    national_id_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    is_organisation: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(AwareDateTime)
    due_at: Mapped[datetime | None] = mapped_column(AwareDateTime)
    returned_at: Mapped[datetime | None] = mapped_column(AwareDateTime)
    status: Mapped[str] = mapped_column(String(16))  # DossierStatus
    timeliness: Mapped[str] = mapped_column(String(16))  # Timeliness, as of the last import
    source_updated_at: Mapped[datetime | None] = mapped_column(AwareDateTime)
    # Digest of the normalised record: an unchanged re-import is skipped without a write.
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(AwareDateTime)
    updated_at: Mapped[datetime] = mapped_column(AwareDateTime)


class DossierStatusHistory(Base):
    """Each status change of a dossier as seen by successive imports."""

    __tablename__ = "dossier_status_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    timeliness: Mapped[str] = mapped_column(String(16))
    returned_at: Mapped[datetime | None] = mapped_column(AwareDateTime)
    recorded_at: Mapped[datetime] = mapped_column(AwareDateTime)


class ImportRun(Base):
    """One intake run (an API sync or a file), with its counts."""

    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # api | file
    location: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(AwareDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(AwareDateTime)
    rows_seen: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class QuarantinedRecord(Base):
    """A record that could not be imported, kept with where it came from and why."""

    __tablename__ = "quarantined_records"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    import_run_id: Mapped[int | None] = mapped_column(ForeignKey("import_runs.id"), index=True)
    source: Mapped[str] = mapped_column(String(64))
    row_ref: Mapped[str] = mapped_column(String(128))  # row number in a file, or record id in the API
    field: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    # The raw record may hold personal data, so it is encrypted like everything else.
    raw_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime)


class SyncState(Base):
    """The incremental-sync watermark (updated-since) per source."""

    __tablename__ = "sync_state"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    watermark: Mapped[datetime | None] = mapped_column(AwareDateTime)
    updated_at: Mapped[datetime] = mapped_column(AwareDateTime)
