"""Keep the dossier facts copied onto calls and answers in step with the dossiers after an import.

The summaries group call attempts and survey answers without joining the dossiers (docs/analysis.md,
"Performance notes"): each attempt carries its dossier's agency and field, each answer its agency,
field and timeliness. A later import can correct those facts — a dossier filed under the wrong
agency, a return date fixed so that "late" becomes "on time". This refresh, run in the import's own
transaction, rewrites the copies of the dossiers that import changed, so the results for Home
Affairs always follow the current dossier data.

The dossiers an import changed are those it stamped (``updated_at >= the import's now``); an
unchanged re-import stamps none and the refresh touches nothing. Other copies are left alone on
purpose: an answer's ``phone_hash`` records who answered, and a campaign's targets keep the agency
they were drawn for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from callcenter.dialer.models import CallAttempt
from callcenter.intake.models import Dossier
from callcenter.ivr.models import SurveyResponse


@dataclass(frozen=True)
class CopiesRefreshed:
    attempts: int
    answers: int


def refresh_dossier_copies(session: Session, *, changed_since: datetime) -> CopiesRefreshed:
    """Rewrite the agency, field and timeliness copies of the dossiers changed since ``changed_since``."""
    changed = (
        select(Dossier.id, Dossier.agency_id, Dossier.field_id, Dossier.timeliness)
        .where(Dossier.updated_at >= changed_since)
        .subquery("changed")
    )
    attempts = session.execute(
        update(CallAttempt)
        .where(
            CallAttempt.dossier_id == changed.c.id,
            or_(CallAttempt.agency_id != changed.c.agency_id, CallAttempt.field_id != changed.c.field_id),
        )
        .values(agency_id=changed.c.agency_id, field_id=changed.c.field_id)
        .execution_options(synchronize_session=False)
    )
    answers = session.execute(
        update(SurveyResponse)
        .where(
            SurveyResponse.dossier_id == changed.c.id,
            or_(
                SurveyResponse.agency_id != changed.c.agency_id,
                SurveyResponse.field_id.is_distinct_from(changed.c.field_id),
                SurveyResponse.dossier_timeliness.is_distinct_from(changed.c.timeliness),
            ),
        )
        .values(
            agency_id=changed.c.agency_id,
            field_id=changed.c.field_id,
            dossier_timeliness=changed.c.timeliness,
        )
        .execution_options(synchronize_session=False)
    )
    return CopiesRefreshed(attempts=attempts.rowcount, answers=answers.rowcount)  # type: ignore[attr-defined]
