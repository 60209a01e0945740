"""The pipeline :class:`~opsloop.learn.pipelines.RunTracker` on MLflow.

A pipeline run is an MLflow run (the parent) in experiment ``pipeline/<name>``; each step is
a nested child run (tag ``mlflow.parentRunId``). Params are flattened to strings (MLflow
keeps at most 6000 characters of a value), metrics go through ``log_batch``, and artifacts
are recorded as tags ``opsloop.artifact.<output>`` holding the content-addressed URI rather
than copied: the pipeline's artifact store already has them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from opsloop.learn.mlflow_env import MlflowEnv

_STATUS = {
    "succeeded": "FINISHED",
    "cached": "FINISHED",
    "resumed": "FINISHED",
    "failed": "FAILED",
    "upstream_failed": "FAILED",
    "interrupted": "KILLED",
}
MAX_PARAM = 6000


def param_text(value: Any) -> str:
    """A param value as MLflow stores it.

    >>> param_text({"b": 1, "a": [1, 2]}), param_text(0.5), param_text("x" * 7000)[-3:]
    ('{"a": [1, 2], "b": 1}', '0.5', '...')
    """
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 3] + "..."


class MlflowTracker:
    """Reports pipeline runs to MLflow (embedded store or a server)."""

    def __init__(self, env: MlflowEnv, experiment_prefix: str = "pipeline/"):
        self.env = env
        self.prefix = experiment_prefix
        self._client: Any = None
        self._lock = threading.Lock()
        self.run_experiments: dict[str, str] = {}

    @property
    def tracking_uri(self) -> str:
        """Where the runs go (steps read it from their context to nest their own runs)."""
        return self.env.tracking_uri

    @property
    def client(self) -> Any:
        """The ``MlflowClient`` (created on first use)."""
        with self._lock:
            if self._client is None:
                self._client = self.env.client()
            return self._client

    def start_run(self, name: str, params: Mapping[str, Any]) -> str:
        """Open the parent run in experiment ``<prefix><name>``."""
        experiment = self.env.experiment_id(self.prefix + name, self.client)
        run = self.client.create_run(
            experiment, run_name=name, tags={"opsloop.kind": "pipeline", "opsloop.pipeline": name}
        )
        self.run_experiments[run.info.run_id] = experiment
        self.log_params(run.info.run_id, params)
        return str(run.info.run_id)

    def start_step(self, run_id: str, name: str, params: Mapping[str, Any]) -> str:
        """Open a nested run for one step."""
        experiment = self.run_experiments.get(run_id)
        if experiment is None:
            experiment = self.client.get_run(run_id).info.experiment_id
        child = self.client.create_run(
            experiment,
            run_name=name,
            tags={"mlflow.parentRunId": run_id, "opsloop.kind": "step", "opsloop.step": name},
        )
        self.log_params(child.info.run_id, params)
        return str(child.info.run_id)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log params (stringified, truncated to MLflow's limit)."""
        from mlflow.entities import Param

        items = [Param(str(k)[:250], param_text(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], step: int | None = None
    ) -> None:
        """Log metrics now (non-finite values are skipped: MLflow rejects some of them)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(str(k)[:250], float(v), now, step or 0)
            for k, v in metrics.items()
            if v == v and abs(float(v)) != float("inf")
        ]
        for i in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[i : i + 500])

    def log_artifact(self, run_id: str, name: str, uri: str) -> None:
        """Record where an artifact is (a tag), without copying it."""
        self.client.set_tag(run_id, f"opsloop.artifact.{name}"[:250], uri)

    def end_step(self, step_run_id: str, status: str) -> None:
        """Close a child run with the MLflow status matching ``status``."""
        self.client.set_tag(step_run_id, "opsloop.status", status)
        self.client.set_terminated(step_run_id, _STATUS.get(status, "FAILED"))

    def end_run(self, run_id: str, status: str) -> None:
        """Close the parent run."""
        self.client.set_tag(run_id, "opsloop.status", status)
        self.client.set_terminated(run_id, _STATUS.get(status, "FAILED"))
        self.run_experiments.pop(run_id, None)
