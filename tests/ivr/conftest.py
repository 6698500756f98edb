"""IVR test fixtures: a dossier with its agency and field, on whichever database the test runs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from callcenter.core.models import OptOut
from callcenter.core.pii import PiiCipher
from callcenter.intake.models import Agency, Dossier, Field


def make_dossier(
    session: Session,
    cipher: PiiCipher,
    *,
    phone: str = "+84905123456",
    agency_name: str = "Sở Tư pháp thành phố Đà Nẵng",
    field_name: str = "Hộ tịch",
    returned_at: datetime | None = datetime(2025, 10, 21, 3, 0, tzinfo=UTC),
) -> Dossier:
    """Insert one returned dossier (and its agency and field) and return it, flushed."""
    # Unique across processes and module copies: some tests commit (the AGI server reads them).
    n = uuid.uuid4().hex[:12]
    agency = Agency(code=f"ivr-test-agency-{n}", name=agency_name)
    field = Field(code=f"ivr-test-field-{n}", name=field_name)
    session.add_all([agency, field])
    session.flush()
    now = datetime(2025, 10, 1, tzinfo=UTC)
    dossier = Dossier(
        source="ivr-test",
        code=f"HS-{n}",
        agency_id=agency.id,
        field_id=field.id,
        submitter_name_enc=cipher.encrypt("Nguyễn Văn An"),
        phone_enc=cipher.encrypt(phone),
        phone_hash=cipher.phone_hash(phone),
        phone_kind="mobile",
        received_at=now,
        due_at=now,
        returned_at=returned_at,
        status="returned",
        timeliness="late",
        content_hash="0" * 64,
        created_at=now,
        updated_at=now,
    )
    session.add(dossier)
    session.flush()
    return dossier


@pytest.fixture
def dossier_factory(db_session: Session, cipher: PiiCipher) -> Callable[..., Dossier]:
    return lambda **kw: make_dossier(db_session, cipher, **kw)


def forget_opt_out(engine: Engine, phone_hash: str) -> None:
    """Remove an opt-out a test committed through a server (AGI, Twilio) on a shared database, so
    that later tests in other packages start from an empty opt-out list whatever the order."""
    with Session(engine) as session:
        session.execute(delete(OptOut).where(OptOut.phone_hash == phone_hash))
        session.commit()
