"""Runbook runs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runbook_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("runbook", sa.String(200), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("incident_id", sa.String(200), nullable=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("finished", sa.Float, nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_runbook_runs_created", "runbook_runs", ["created"])
    op.create_index("ix_runbook_runs_status", "runbook_runs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_runbook_runs_status", table_name="runbook_runs")
    op.drop_index("ix_runbook_runs_created", table_name="runbook_runs")
    op.drop_table("runbook_runs")
