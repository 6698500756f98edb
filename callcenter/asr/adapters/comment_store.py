"""The IVR's response tables as the comment transcription sees them (Core statements, no ORM).

``survey_responses`` and ``response_reasons`` belong to the IVR (issue 5): this module reads and
writes them exactly as modelled there and never changes their shape. It looks the tables up in the
shared metadata (``callcenter.models.load_all_models``, the one registry of every domain's
tables) rather than importing ``callcenter.ivr``: the IVR sits above the speech package and
imports it, so a direct import would point the dependency the wrong way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from callcenter.models import load_all_models

COMMENT_PENDING = "pending"
COMMENT_DONE = "done"
COMMENT_FAILED = "failed"
CLASSIFIER_SOURCE = "classifier"


def _tables() -> tuple[Table, Table]:
    tables = load_all_models().metadata.tables
    return tables["survey_responses"], tables["response_reasons"]


@dataclass(frozen=True, slots=True)
class CommentJob:
    response_id: int
    recording_ref: str | None
    comment_status: str
    satisfied: bool | None
    # When the comment was recorded, as near as the row tells: the call's end (the recording is the
    # survey's last step), else the satisfaction answer, else the call's start.
    recorded_at: datetime


def get_comment_job(session: Session, *, response_id: int) -> CommentJob | None:
    """What the transcription needs to know about one response, read fresh."""
    responses, _ = _tables()
    c = responses.c
    row = session.execute(
        select(
            c.id, c.recording_ref, c.comment_status, c.satisfied, c.completed_at, c.answered_at, c.started_at
        ).where(c.id == response_id)
    ).one_or_none()
    if row is None:
        return None
    recorded_at = row.completed_at or row.answered_at or row.started_at
    return CommentJob(int(row.id), row.recording_ref, str(row.comment_status), row.satisfied, recorded_at)


def pending_comment_ids(session: Session, *, limit: int) -> list[int]:
    """Responses with a recorded comment still waiting for its transcript, oldest first."""
    responses, _ = _tables()
    c = responses.c
    return [
        int(i)
        for i in session.scalars(
            select(c.id)
            .where(c.comment_status == COMMENT_PENDING, c.recording_ref.is_not(None))
            .order_by(c.id)
            .limit(limit)
        )
    ]


def finish_comment(
    session: Session, *, response_id: int, comment_enc: bytes | None, status: str, expected: Iterable[str]
) -> bool:
    """Set the transcript and status by compare-and-set; False when another run got there first."""
    responses, _ = _tables()
    c = responses.c
    result = session.execute(
        update(responses)
        .where(c.id == response_id, c.comment_status.in_(list(expected)))
        .values(comment_enc=comment_enc, comment_status=status)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def add_reasons(session: Session, *, response_id: int, codes: Iterable[int], source: str) -> list[int]:
    """Add reasons not already given (a reason keyed in by the citizen keeps its own source)."""
    _, reasons = _tables()
    known = set(session.scalars(select(reasons.c.reason_code).where(reasons.c.response_id == response_id)))
    new = sorted(set(codes) - known)
    if new:
        session.execute(
            insert(reasons),
            [{"response_id": response_id, "reason_code": code, "source": source} for code in new],
        )
    return new
