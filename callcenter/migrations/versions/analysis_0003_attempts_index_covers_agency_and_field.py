"""attempts index covers agency and field

Revision ID: analysis_0003
Revises: analysis_0002
Create Date: 2026-11-22 13:54:24.551988
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import callcenter.core.db


revision: str = 'analysis_0003'
down_revision: str | Sequence[str] | None = 'analysis_0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = 'dialer_0002'


def upgrade() -> None:
    # Written by hand: autogenerate does not compare INCLUDE columns. The call figures group attempts
    # by the agency and field copied onto them (dialer_0002) from this index alone.
    with op.batch_alter_table('call_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_analysis_attempts_created', postgresql_include=['status', 'outcome', 'dossier_id'])
        batch_op.create_index('ix_analysis_attempts_created', ['created_at'], unique=False, postgresql_include=['status', 'outcome', 'dossier_id', 'agency_id', 'field_id'])


def downgrade() -> None:
    with op.batch_alter_table('call_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_analysis_attempts_created', postgresql_include=['status', 'outcome', 'dossier_id', 'agency_id', 'field_id'])
        batch_op.create_index('ix_analysis_attempts_created', ['created_at'], unique=False, postgresql_include=['status', 'outcome', 'dossier_id'])
