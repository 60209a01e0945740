"""Incidents, their timeline, silences, feedback and notification delivery attempts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from opsloop.store.state.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("group_key", sa.String(500), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("merged_into", sa.String(200), nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_incidents_status_updated", "incidents", ["status", "updated_at"])
    op.create_index("ix_incidents_updated", "incidents", ["updated_at"])
    op.create_table(
        "incident_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.String(200), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_incident_events_incident", "incident_events", ["incident_id", "id"])
    op.create_table(
        "silences",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("detector", sa.String(200), nullable=False),
        sa.Column("signal", sa.String(300), nullable=False),
        sa.Column("label", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_feedback_detector", "feedback", ["detector", "at"])
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("receiver", sa.String(200), nullable=False),
        sa.Column("incident_id", sa.String(200), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(100), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
    )
    op.create_index("ix_delivery_incident", "delivery_attempts", ["incident_id", "id"])


def downgrade() -> None:
    for index, table in (
        ("ix_delivery_incident", "delivery_attempts"),
        ("ix_feedback_detector", "feedback"),
        ("ix_incident_events_incident", "incident_events"),
        ("ix_incidents_updated", "incidents"),
        ("ix_incidents_status_updated", "incidents"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("delivery_attempts", "feedback", "silences", "incident_events", "incidents"):
        op.drop_table(table)
