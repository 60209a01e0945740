"""SQLAlchemy ORM models of the state store. Migrations in ``opsloop/store/migrations``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every state table."""


class ApiToken(Base):
    """An API token. Only a SHA-256 hash of its secret part is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditEvent(Base):
    """One audited change: who did what to which thing, and when."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(300), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")


class IncidentRow(Base):
    """An incident: indexed columns for queries, the full view as JSON (``act.incidents``)."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_status_updated", "status", "updated_at"),
        Index("ix_incidents_updated", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(500))
    group_key: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    merged_into: Mapped[str | None] = mapped_column(String(200), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class IncidentEvent(Base):
    """The timeline of an incident: alerts joining (with the reason), notes, state changes."""

    __tablename__ = "incident_events"
    __table_args__ = (Index("ix_incident_events_incident", "incident_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SilenceRow(Base):
    """A silence (label matchers over a time range)."""

    __tablename__ = "silences"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_by: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class FeedbackRow(Base):
    """An operator's verdict on an incident or alert: training labels for the detectors."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_detector", "detector", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detector: Mapped[str] = mapped_column(String(200))
    signal: Mapped[str] = mapped_column(String(300))
    label: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DeliveryRow(Base):
    """One attempt to deliver a notification to a receiver."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_incident", "incident_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    receiver: Mapped[str] = mapped_column(String(200))
    incident_id: Mapped[str] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))
    ok: Mapped[bool] = mapped_column()
    status: Mapped[str] = mapped_column(String(100), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_s: Mapped[float] = mapped_column()


class AlertJournal(Base):
    """Every accepted alert and the decision taken, written before the intake answers.

    Incident snapshots are written at most once a second; on start the journal entries after
    the last snapshot are re-applied, so an acknowledged alert is never lost.
    """

    __tablename__ = "alert_journal"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused after trimming

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column()
    incident_id: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    alert: Mapped[dict[str, Any]] = mapped_column(JSON)


class EngineState(Base):
    """Small named values of the engines (e.g. the journal position of the last snapshot)."""

    __tablename__ = "engine_state"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)


class RunbookRunRow(Base):
    """One runbook run: indexed columns plus the full record (steps, outputs) as JSON.

    ``resume`` holds what a restart needs to resume a run that has not executed any step yet
    (queued, or waiting for approval): the full trigger event and the parameters as given. It
    is never shown (not in ``data``) and is cleared once the run starts its steps or ends.
    """

    __tablename__ = "runbook_runs"
    __table_args__ = (
        Index("ix_runbook_runs_created", "created"),
        Index("ix_runbook_runs_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    runbook: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(30))
    incident_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created: Mapped[float] = mapped_column()
    finished: Mapped[float | None] = mapped_column(nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    resume: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)


class PipelineRunRow(Base):
    """One pipeline run: indexed columns plus the full record (steps, logs, lineage) as JSON."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (
        Index("ix_pipeline_runs_created", "created"),
        Index("ix_pipeline_runs_pipeline", "pipeline"),
        Index("ix_pipeline_runs_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(30))
    trigger: Mapped[str] = mapped_column(String(200))
    created: Mapped[float] = mapped_column()
    finished: Mapped[float | None] = mapped_column(nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class ScheduleSlotRow(Base):
    """The last time slot a schedule has claimed: a slot runs once, across restarts."""

    __tablename__ = "schedule_slots"

    schedule: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_slot: Mapped[float] = mapped_column()
    claimed_at: Mapped[float] = mapped_column()
