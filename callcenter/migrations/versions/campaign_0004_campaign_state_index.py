"""campaign/state index for the "anything still live?" check after each call result

``complete_if_done`` runs after every call result. Its ``LIMIT 1`` over ``state IN (queued,
in_call)`` was planned as a sequential scan that walked every completed target of the campaign
first: 0.24 ms per result at 3,000 targets, 14 ms at 90,000. The check is now one ordered lookup
per state in this index.

Revision ID: campaign_0004
Revises: campaign_0003
Create Date: 2026-12-06 11:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "campaign_0004"
down_revision: str | Sequence[str] | None = "campaign_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("call_targets", schema=None) as batch_op:
        batch_op.create_index("ix_call_targets_campaign_state", ["campaign_id", "state", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("call_targets", schema=None) as batch_op:
        batch_op.drop_index("ix_call_targets_campaign_state")
