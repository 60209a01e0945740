"""Run records, the :class:`RunStore` they are saved to, and what happens to them at start-up.

The engine calls ``store.save(record)`` at every transition (pending, waiting for approval,
running, each step, finished), so a crash leaves the last state on disk. Everything in a record
that is shown (:meth:`RunRecord.to_dict`) has been redacted already - secret values never reach
a store.

On start-up the host calls :meth:`~opsloop.act.runbooks.engine.RunbookEngine.recover`: a run
that had not executed any step yet (:func:`resumable`: queued, or waiting at the run's approval
gate) is resumed with the same id; any other run left ``pending``, ``running`` or
``waiting_approval`` by a previous process becomes ``interrupted`` (:func:`mark_interrupted`
does only that). Steps are never re-run silently; an operator decides.

>>> store = InMemoryRunStore()
>>> store.save(RunRecord(id="r1", runbook="x", status=RunStatus.RUNNING))
>>> [r.status.value for r in mark_interrupted(store, now=10.0)], store.get("r1").finished
(['interrupted'], 10.0)
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "UNFINISHED",
    "InMemoryRunStore",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "StepRecord",
    "StepStatus",
    "interrupt",
    "mark_interrupted",
    "resumable",
]


class RunStatus(StrEnum):
    """Where a run is. Final: succeeded, failed, rejected, cancelled, interrupted, skipped."""

    PENDING = "pending"
    WAITING_APPROVAL = "waiting_approval"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"

    @property
    def final(self) -> bool:
        """Whether the run is over."""
        return self not in UNFINISHED


UNFINISHED = frozenset({RunStatus.PENDING, RunStatus.WAITING_APPROVAL, RunStatus.RUNNING})


class StepStatus(StrEnum):
    """Where a step is; ``planned`` is a dry-run step."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    PLANNED = "planned"


@dataclass
class StepRecord:
    """One step of a run (``phase`` is ``steps`` or ``on_failure``).

    ``rendered`` is what ran - ``{"argv": [...], "cwd": ..., "env_keys": [...]}``,
    ``{"method": ..., "url": ..., "headers": {...}, "json": ...}``, ``{"entrypoint": ...,
    "args": {...}}`` ... - with secrets masked.
    """

    index: int
    label: str
    type: str
    phase: str = "steps"
    id: str | None = None
    status: StepStatus = StepStatus.PENDING
    rendered: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    http_status: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    duration_s: float | None = None
    attempts: int = 0
    approver: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        d = asdict(self)
        d["status"] = self.status.value
        return d


@dataclass
class RunRecord:
    """One run of a runbook; saved to the :class:`RunStore` at every change."""

    id: str
    runbook: str
    status: RunStatus = RunStatus.PENDING
    trigger: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    requested_by: str | None = None
    reason: str | None = None
    error: str | None = None
    approver: str | None = None
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    steps: list[StepRecord] = field(default_factory=list)
    resume: dict[str, Any] | None = field(default=None, repr=False)
    """What a restart needs to resume the run (the trigger event and the parameters as given);
    set while nothing has run, cleared once steps start or the run ends. Never shown: it is
    not part of :meth:`to_dict`, a store keeps it apart."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (without :attr:`resume`)."""
        d = asdict(self)
        d.pop("resume", None)
        d["status"] = self.status.value
        d["steps"] = [s.to_dict() for s in self.steps]
        return d

    def step(self, label: str, phase: str = "steps") -> StepRecord:
        """The step record with this label (id or name) in ``phase``; ``KeyError`` if none."""
        for s in self.steps:
            if s.phase == phase and (s.label == label or s.id == label):
                return s
        raise KeyError(label)


@runtime_checkable
class RunStore(Protocol):
    """Where run records go (the host implements it over SQL)."""

    def save(self, record: RunRecord) -> None:
        """Insert or replace the record with ``record.id`` (copy it: the engine keeps
        mutating its own object), :attr:`RunRecord.resume` included."""

    def unfinished(self) -> list[RunRecord]:
        """Records whose status is pending, waiting_approval or running."""


class InMemoryRunStore:
    """A :class:`RunStore` in a dict, for tests and embedded use; ``history`` lists every
    ``(run id, status)`` saved, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, RunRecord] = {}
        self.history: list[tuple[str, RunStatus]] = []

    def save(self, record: RunRecord) -> None:
        """Store a deep copy."""
        snap = copy.deepcopy(record)
        with self._lock:
            self._records[record.id] = snap
            self.history.append((record.id, record.status))

    def unfinished(self) -> list[RunRecord]:
        """Copies of the unfinished records."""
        with self._lock:
            return [copy.deepcopy(r) for r in self._records.values() if r.status in UNFINISHED]

    def get(self, run_id: str) -> RunRecord | None:
        """A copy of one record."""
        with self._lock:
            r = self._records.get(run_id)
            return copy.deepcopy(r) if r else None

    def all(self) -> list[RunRecord]:
        """Copies of every record, oldest first."""
        with self._lock:
            return [copy.deepcopy(r) for r in self._records.values()]


_OPEN_STEPS = (StepStatus.RUNNING, StepStatus.WAITING_APPROVAL, StepStatus.PENDING)


def resumable(rec: RunRecord) -> bool:
    """Whether a run found unfinished at start-up can be resumed: it kept its resume payload
    and no step has run - ``pending`` (queued) without steps, or ``waiting_approval`` at the
    run-level gate (``policies.requires_approval``) only. A ``running`` run, or one waiting at
    an ``approve`` step, cannot: its steps may have half-run.

    >>> rec = RunRecord(id="r", runbook="x", resume={"event": {}, "params": {}})
    >>> resumable(rec), resumable(RunRecord(id="r", runbook="x"))
    (True, False)
    """
    if rec.resume is None or rec.dry_run:
        return False
    if rec.status is RunStatus.PENDING:
        return not rec.steps
    if rec.status is RunStatus.WAITING_APPROVAL and len(rec.steps) == 1:
        gate = rec.steps[0]
        return gate.phase == "gate" and gate.status is StepStatus.WAITING_APPROVAL
    return False


def interrupt(rec: RunRecord, at: float, error: str | None = None) -> RunRecord:
    """Make ``rec`` (and its unfinished steps) ``interrupted`` at ``at``; return it."""
    was = rec.status.value
    rec.status = RunStatus.INTERRUPTED
    rec.finished = at
    rec.error = error or f"opsloop stopped while this run was {was}; it was not re-run"
    rec.resume = None
    for s in rec.steps:
        if s.status in _OPEN_STEPS:
            s.status = StepStatus.INTERRUPTED
            s.finished = at
    return rec


def mark_interrupted(store: RunStore, now: float | None = None) -> list[RunRecord]:
    """Mark every unfinished run ``interrupted`` (and its unfinished steps too); return them.

    Nothing is re-run, nothing resumed (the engine's ``recover`` resumes what it can).
    """
    at = time.time() if now is None else now
    out: list[RunRecord] = []
    for rec in store.unfinished():
        store.save(interrupt(rec, at))
        out.append(rec)
    return out
