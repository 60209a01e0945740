"""Run records: what happened in each pipeline run, step by step, and where outputs came from.

A :class:`RunStore` keeps :class:`RunRecord` objects. A process that dies mid-run leaves
its record ``running``; call :func:`mark_interrupted` at start-up so such runs become
``interrupted`` (and can be resumed) instead of looking alive forever.

>>> store = InMemoryRunStore()
>>> store.save(RunRecord(id="r1", pipeline="p", status=RunStatus.RUNNING))
>>> mark_interrupted(store)
['r1']
>>> store.get("r1").status
<RunStatus.INTERRUPTED: 'interrupted'>
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from opsloop.learn.pipelines.artifacts import ArtifactRef


def utcnow() -> datetime:
    """Timezone-aware now."""
    return datetime.now(UTC)


class RunStatus(StrEnum):
    """Lifecycle of a pipeline run."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class StepStatus(StrEnum):
    """Lifecycle of one step within a run."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CACHED = "cached"  # outputs reused from the step cache
    RESUMED = "resumed"  # outputs reused from the run named in ``resume_from``
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    INTERRUPTED = "interrupted"

    @property
    def finished_ok(self) -> bool:
        """Whether the step's outputs are available to dependents."""
        return self in (StepStatus.SUCCEEDED, StepStatus.CACHED, StepStatus.RESUMED)


class AttemptRecord(BaseModel):
    """One try of a step."""

    number: int
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    timed_out: bool = False
    retry_in: float | None = None  # seconds waited before the next attempt, if any


class StepRecord(BaseModel):
    """State, timing, logs and provenance of one step in one run."""

    name: str
    status: StepStatus = StepStatus.PENDING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    code_hash: str | None = None
    cache_key: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, ArtifactRef] = Field(default_factory=dict)
    outputs: dict[str, ArtifactRef] = Field(default_factory=dict)
    attempts: list[AttemptRecord] = Field(default_factory=list)
    logs: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    reused_from: str | None = None  # run id whose outputs were reused (cache or resume)
    tracker_run_id: str | None = None  # the step's child run in the tracker (MLflow run id)


class LineageRecord(BaseModel):
    """Which code, params and inputs produced one output artifact."""

    run_id: str
    step: str
    output: str
    artifact: ArtifactRef
    code_hash: str
    cache_key: str
    params: dict[str, Any]
    inputs: dict[str, ArtifactRef]
    produced_in_run: str  # differs from run_id when the output was reused


class RunRecord(BaseModel):
    """One pipeline run."""

    id: str
    pipeline: str
    status: RunStatus = RunStatus.PENDING
    params: dict[str, Any] = Field(default_factory=dict)
    resume_from: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    steps: dict[str, StepRecord] = Field(default_factory=dict)
    lineage: list[LineageRecord] = Field(default_factory=list)
    error: str | None = None
    tracker_run_id: str | None = None  # the parent run in the tracker (MLflow run id)
    trigger: str = "manual"  # what started it: manual, schedule, runbook, api, ...


@runtime_checkable
class RunStore(Protocol):
    """Persists run records (in memory here; a SQL store implements the same three calls)."""

    def save(self, record: RunRecord) -> None:
        """Insert or replace the record with ``record.id``."""
        ...

    def get(self, run_id: str) -> RunRecord | None:
        """The record, or ``None``."""
        ...

    def list(self, status: RunStatus | None = None) -> list[RunRecord]:
        """Records, oldest first, optionally only those with ``status``."""
        ...


class InMemoryRunStore:
    """Records in a dict; copies in and out so callers never share mutable state."""

    def __init__(self) -> None:
        self._runs: dict[str, RunRecord] = {}
        self._lock = threading.Lock()

    def save(self, record: RunRecord) -> None:
        """Store a deep copy."""
        with self._lock:
            self._runs[record.id] = record.model_copy(deep=True)

    def get(self, run_id: str) -> RunRecord | None:
        """A deep copy, or ``None``."""
        with self._lock:
            found = self._runs.get(run_id)
            return found.model_copy(deep=True) if found else None

    def list(self, status: RunStatus | None = None) -> list[RunRecord]:
        """Deep copies, oldest first."""
        with self._lock:
            runs = [r for r in self._runs.values() if status is None or r.status == status]
            return [r.model_copy(deep=True) for r in sorted(runs, key=lambda r: r.created_at)]


def mark_interrupted(store: RunStore, reason: str = "process stopped during the run") -> list[str]:
    """Mark every ``running`` run ``interrupted``; return their ids.

    Call once at start-up, before this process starts runs of its own: a record still
    ``running`` then belongs to a process that is gone. Its unfinished steps become
    ``interrupted``; finished steps keep their outputs, so the run can be resumed.
    """
    ids: list[str] = []
    for record in store.list(RunStatus.RUNNING):
        now = utcnow()
        record.status = RunStatus.INTERRUPTED
        record.finished_at = now
        record.error = reason
        for step in record.steps.values():
            if step.status in (StepStatus.PENDING, StepStatus.RUNNING):
                step.status = StepStatus.INTERRUPTED
                step.finished_at = step.finished_at or now
        store.save(record)
        ids.append(record.id)
    return ids


def lineage_of(store: RunStore, content_hash: str) -> list[LineageRecord]:
    """Every lineage entry, across runs, that produced or reused the artifact."""
    return [
        entry
        for record in store.list()
        for entry in record.lineage
        if entry.artifact.content_hash == content_hash
    ]
