"""Pipeline run records in the state store (SQLite or PostgreSQL).

Implements the pipeline core's :class:`~opsloop.learn.pipelines.RunStore`: each save replaces
the row of the run (indexed status/pipeline/trigger/times plus the whole record as JSON), so
the API, dashboard and CLI of any process see runs live, and a process that restarts marks
the runs it left ``running`` as ``interrupted`` (resumable).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from opsloop.learn.pipelines import RunRecord, RunStatus
from opsloop.store.state import StateDB
from opsloop.store.state.models import PipelineRunRow


class SqlPipelineRunStore:
    """A :class:`~opsloop.learn.pipelines.RunStore` over the state store."""

    def __init__(self, db: StateDB) -> None:
        self.db = db

    def save(self, record: RunRecord) -> None:
        """Insert or replace the run."""
        data = record.model_dump(mode="json")
        created = record.created_at.timestamp()
        finished = record.finished_at.timestamp() if record.finished_at else None
        with self.db.session() as s:
            row = s.get(PipelineRunRow, record.id)
            if row is None:
                s.add(PipelineRunRow(
                    id=record.id, pipeline=record.pipeline, status=record.status.value,
                    trigger=record.trigger[:200], created=created, finished=finished, data=data,
                ))  # fmt: skip
            else:
                row.status, row.finished, row.data = record.status.value, finished, data

    def get(self, run_id: str) -> RunRecord | None:
        """The run, or ``None``."""
        with self.db.session() as s:
            row = s.get(PipelineRunRow, run_id)
            return None if row is None else RunRecord.model_validate(row.data)

    def list(self, status: RunStatus | None = None) -> list[RunRecord]:
        """Runs, oldest first, optionally only those with ``status``."""
        stmt = select(PipelineRunRow).order_by(PipelineRunRow.created)
        if status is not None:
            stmt = stmt.where(PipelineRunRow.status == status.value)
        with self.db.session() as s:
            return [RunRecord.model_validate(r.data) for r in s.scalars(stmt)]

    def recent(
        self, pipeline: str | None = None, limit: int = 50, status: str | None = None
    ) -> list[RunRecord]:
        """The newest runs first."""
        stmt = select(PipelineRunRow).order_by(PipelineRunRow.created.desc()).limit(limit)
        if pipeline:
            stmt = stmt.where(PipelineRunRow.pipeline == pipeline)
        if status:
            stmt = stmt.where(PipelineRunRow.status == status)
        with self.db.session() as s:
            return [RunRecord.model_validate(r.data) for r in s.scalars(stmt)]


def run_summary(record: RunRecord) -> dict[str, Any]:
    """The short form of a run (lists): status, timing and per-step status counts."""
    counts: dict[str, int] = {}
    for step in record.steps.values():
        counts[step.status.value] = counts.get(step.status.value, 0) + 1
    duration = None
    if record.started_at and record.finished_at:
        duration = (record.finished_at - record.started_at).total_seconds()
    return {
        "id": record.id,
        "pipeline": record.pipeline,
        "status": record.status.value,
        "trigger": record.trigger,
        "created_at": record.created_at.isoformat(),
        "started_at": record.started_at.isoformat() if record.started_at else None,
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "duration_s": duration,
        "steps": counts,
        "cached_steps": sorted(
            n for n, s in record.steps.items() if s.status.value in ("cached", "resumed")
        ),
        "mlflow_run_id": record.tracker_run_id,
        "error": record.error,
    }
