"""Runbook runs keep what a restart needs to resume them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable, no default: an ALTER TABLE ADD COLUMN that SQLite and PostgreSQL both accept
    op.add_column("runbook_runs", sa.Column("resume", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runbook_runs") as batch:  # SQLite cannot DROP COLUMN in place
        batch.drop_column("resume")
