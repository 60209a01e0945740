"""Experiment tracking behind a small protocol, so MLflow (or anything) can plug in.

The runner opens a *parent* run per pipeline run and a *child* run per step, logs params,
metrics and artifact URIs, and closes them with a status. An MLflow implementation maps
``start_run`` to ``mlflow.start_run(run_name=...)`` and ``start_step`` to a nested run
(``parent_run_id=``); ``log_artifact`` records the URI rather than copying the file.

>>> t = InMemoryTracker()
>>> run = t.start_run("train", {"lr": 0.1})
>>> child = t.start_step(run, "fit", {"epochs": 3})
>>> t.log_metrics(child, {"loss": 0.5})
>>> t.end_step(child, "succeeded"); t.end_run(run, "succeeded")
>>> t.runs[run].children == [child], t.runs[child].metrics
(True, {'loss': 0.5})
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class RunTracker(Protocol):
    """Where params, metrics and artifacts of runs and steps are reported."""

    def start_run(self, name: str, params: Mapping[str, Any]) -> str:
        """Open the parent run of a pipeline run; return its tracker id."""
        ...

    def start_step(self, run_id: str, name: str, params: Mapping[str, Any]) -> str:
        """Open a child run of ``run_id`` for one step; return its tracker id."""
        ...

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Params of a run or step."""
        ...

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], step: int | None = None
    ) -> None:
        """Metrics of a run or step (``step`` is the training step/epoch, if any)."""
        ...

    def log_artifact(self, run_id: str, name: str, uri: str) -> None:
        """Where an artifact of a run or step is stored."""
        ...

    def end_step(self, step_run_id: str, status: str) -> None:
        """Close a child run."""
        ...

    def end_run(self, run_id: str, status: str) -> None:
        """Close a parent run."""
        ...


@dataclass
class TrackedRun:
    """What :class:`InMemoryTracker` remembers of one (parent or child) run."""

    id: str
    name: str
    parent: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    status: str | None = None


class InMemoryTracker:
    """Keeps everything in ``runs`` (tests, notebooks, a default that loses nothing)."""

    def __init__(self) -> None:
        self.runs: dict[str, TrackedRun] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _new(self, name: str, parent: str | None, params: Mapping[str, Any]) -> str:
        with self._lock:
            run_id = f"t{next(self._ids)}"
            self.runs[run_id] = TrackedRun(run_id, name, parent, dict(params))
            if parent is not None:
                self.runs[parent].children.append(run_id)
            return run_id

    def start_run(self, name: str, params: Mapping[str, Any]) -> str:
        """Open a parent run."""
        return self._new(name, None, params)

    def start_step(self, run_id: str, name: str, params: Mapping[str, Any]) -> str:
        """Open a child run."""
        return self._new(name, run_id, params)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Merge params."""
        with self._lock:
            self.runs[run_id].params.update(params)

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], step: int | None = None
    ) -> None:
        """Keep the last value of each metric."""
        with self._lock:
            self.runs[run_id].metrics.update(metrics)

    def log_artifact(self, run_id: str, name: str, uri: str) -> None:
        """Remember the URI."""
        with self._lock:
            self.runs[run_id].artifacts[name] = uri

    def end_step(self, step_run_id: str, status: str) -> None:
        """Set the final status."""
        with self._lock:
            self.runs[step_run_id].status = status

    def end_run(self, run_id: str, status: str) -> None:
        """Set the final status."""
        with self._lock:
            self.runs[run_id].status = status

    def roots(self) -> list[TrackedRun]:
        """Parent runs, in creation order."""
        return [r for r in self.runs.values() if r.parent is None]


class NullTracker:
    """Tracks nothing (the default when no tracker is configured)."""

    def start_run(self, name: str, params: Mapping[str, Any]) -> str:
        """A placeholder id."""
        return "null"

    def start_step(self, run_id: str, name: str, params: Mapping[str, Any]) -> str:
        """A placeholder id."""
        return "null"

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Nothing."""

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], step: int | None = None
    ) -> None:
        """Nothing."""

    def log_artifact(self, run_id: str, name: str, uri: str) -> None:
        """Nothing."""

    def end_step(self, step_run_id: str, status: str) -> None:
        """Nothing."""

    def end_run(self, run_id: str, status: str) -> None:
        """Nothing."""
