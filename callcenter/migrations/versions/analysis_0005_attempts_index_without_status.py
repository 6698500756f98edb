"""attempts index without the status

Revision ID: analysis_0005
Revises: analysis_0004
Create Date: 2026-12-07 06:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "analysis_0005"
down_revision: str | Sequence[str] | None = "analysis_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "dialer_0002"

_BEFORE = ["status", "outcome", "dossier_id", "agency_id", "field_id"]
_AFTER = ["outcome", "dossier_id", "agency_id", "field_id"]


def upgrade() -> None:
    # Written by hand: autogenerate does not compare INCLUDE columns. The call figures tell a
    # finished attempt by its outcome (set exactly when it finishes), so the index no longer holds
    # the status, which changes four times during a call: with it here no status change could be a
    # HOT update (dialer_0003).
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_analysis_attempts_created", postgresql_include=_BEFORE)
        batch_op.create_index(
            "ix_analysis_attempts_created", ["created_at"], unique=False, postgresql_include=_AFTER
        )


def downgrade() -> None:
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_analysis_attempts_created", postgresql_include=_AFTER)
        batch_op.create_index(
            "ix_analysis_attempts_created", ["created_at"], unique=False, postgresql_include=_BEFORE
        )
