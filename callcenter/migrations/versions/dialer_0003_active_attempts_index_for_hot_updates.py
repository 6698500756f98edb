"""active attempts index, so that status changes are HOT updates

Revision ID: dialer_0003
Revises: dialer_0002
Create Date: 2026-12-07 06:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "dialer_0003"
down_revision: str | Sequence[str] | None = "dialer_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "analysis_0005"

_ACTIVE = sa.text("ended_at IS NULL")


def upgrade() -> None:
    # Written by hand. An attempt's status changes four times before it ends (claimed, dialing,
    # ringing, in survey); with status and updated_at in an index each change wrote a new entry into
    # every index of the table. The attempts not yet final (ended_at IS NULL: the releaser's count,
    # the reaper's work list, an owner's survivors) are found through a small partial index on a
    # column those changes never touch instead, so PostgreSQL can make them HOT updates; the free
    # space left in each page (fillfactor) is where their new row versions go.
    op.drop_index("ix_call_attempts_status_updated", table_name="call_attempts")
    op.create_index(
        "ix_call_attempts_active",
        "call_attempts",
        ["id"],
        unique=False,
        postgresql_where=_ACTIVE,
        sqlite_where=_ACTIVE,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE call_attempts SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE call_attempts RESET (fillfactor)")
    op.drop_index("ix_call_attempts_active", table_name="call_attempts")
    op.create_index(
        "ix_call_attempts_status_updated", "call_attempts", ["status", "updated_at"], unique=False
    )
