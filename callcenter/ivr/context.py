"""What a call needs to know about its dossier, read once when the call starts."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from callcenter.core import driver
from callcenter.core.clock import to_local
from callcenter.core.errors import NotFound
from callcenter.intake.models import Agency, Dossier, Field
from callcenter.ivr.flow import CallContext

__all__ = ["CallContext", "load_call_context"]


_CALL_CONTEXT = (
    select(
        Dossier.id,
        Dossier.agency_id,
        Dossier.field_id,
        Dossier.returned_at,
        Dossier.phone_hash,
        Dossier.timeliness,
        Agency.name,
        Field.name,
    )
    .join(Agency, Agency.id == Dossier.agency_id)
    .join(Field, Field.id == Dossier.field_id)
    .where(Dossier.id == bindparam("ctx_dossier"))
)


def load_call_context(session: Session, *, dossier_id: int) -> CallContext:
    """The agency, field and return date of a dossier, for the greeting; raises NotFound."""
    # Columns, not the Dossier entity: the encrypted personal data is not needed here.
    # Core on the session's connection, built once: it runs for every answered call. Flushed first,
    # as an ORM query would autoflush (a no-op for a clean session).
    session.flush()
    row = driver.execute(session.connection(), _CALL_CONTEXT, {"ctx_dossier": dossier_id}).one_or_none()
    if row is None:
        raise NotFound(f"dossier {dossier_id} does not exist")
    did, agency_id, field_id, returned_at, phone_hash, timeliness, agency_name, field_name = row
    return CallContext(
        dossier_id=did,
        agency_id=agency_id,
        agency_name=agency_name,
        field_id=field_id,
        field_name=field_name,
        returned_on=to_local(returned_at).date() if returned_at else None,
        phone_hash=phone_hash,
        timeliness=timeliness,
    )
