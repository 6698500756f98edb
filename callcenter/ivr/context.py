"""What a call needs to know about its dossier, read once when the call starts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.core.clock import to_local
from callcenter.core.errors import NotFound
from callcenter.intake.models import Agency, Dossier, Field
from callcenter.ivr.flow import CallContext

__all__ = ["CallContext", "load_call_context"]


def load_call_context(session: Session, *, dossier_id: int) -> CallContext:
    """The agency, field and return date of a dossier, for the greeting; raises NotFound."""
    row = session.execute(
        select(Dossier, Agency.name, Field.name)
        .join(Agency, Agency.id == Dossier.agency_id)
        .join(Field, Field.id == Dossier.field_id)
        .where(Dossier.id == dossier_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"dossier {dossier_id} does not exist")
    dossier, agency_name, field_name = row
    returned_on = to_local(dossier.returned_at).date() if dossier.returned_at else None
    return CallContext(
        dossier_id=dossier.id,
        agency_id=dossier.agency_id,
        agency_name=agency_name,
        field_id=dossier.field_id,
        field_name=field_name,
        returned_on=returned_on,
        phone_hash=dossier.phone_hash,
    )
