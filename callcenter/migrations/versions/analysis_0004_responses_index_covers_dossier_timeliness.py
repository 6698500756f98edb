"""responses index covers the dossier timeliness

Revision ID: analysis_0004
Revises: analysis_0003
Create Date: 2026-11-22 14:03:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "analysis_0004"
down_revision: str | Sequence[str] | None = "analysis_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "ivr_0002"

_BEFORE = ["agency_id", "field_id", "channel", "status", "satisfied", "dossier_id"]
_AFTER = [*_BEFORE, "dossier_timeliness"]


def upgrade() -> None:
    # Written by hand: autogenerate does not compare INCLUDE columns. The answer figures split by
    # stratum read the timeliness copied onto the response (ivr_0002) from this index alone.
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.drop_index("ix_analysis_responses_answered", postgresql_include=_BEFORE)
        batch_op.create_index(
            "ix_analysis_responses_answered", ["answered_at"], unique=False, postgresql_include=_AFTER
        )


def downgrade() -> None:
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.drop_index("ix_analysis_responses_answered", postgresql_include=_AFTER)
        batch_op.create_index(
            "ix_analysis_responses_answered", ["answered_at"], unique=False, postgresql_include=_BEFORE
        )
