"""The MLflow pyfunc flavour of a log-session model: ``mlflow.pyfunc.load_model`` predicts.

The model is logged *from code* (MLflow's models-from-code): MLflow copies this file into the
model directory and runs it at load time, where :func:`mlflow.models.set_model` names the model;
its state is the package JSON, the artifact ``state``. Nothing is pickled.

Input: one string per session, its events in the model's vocabulary separated by spaces (a
DataFrame with one such column works too). Output: one :class:`SessionScore` per session,
``score`` (summed surprisal of the violated rules, in decades) and ``anomaly``
(``score >= threshold``). MLflow derives the signature from the type hints.

This module imports MLflow at import time; only :mod:`opsloop.learn.detectors.mlflow_io` (from
inside its functions) and MLflow's model loader import it.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow.models
import mlflow.pyfunc
from pydantic import BaseModel

from opsloop.learn.detectors.package import SessionModelPackage

STATE_ARTIFACT = "state"


class SessionScore(BaseModel):
    """The verdict on one session."""

    score: float
    anomaly: bool


class LogSessionsPyfunc(mlflow.pyfunc.PythonModel):
    """Scores sessions with the packaged :class:`CountRuleModel`."""

    package: SessionModelPackage | None = None

    def load_context(self, context: Any) -> None:
        """Read the package JSON from the ``state`` artifact."""
        with open(context.artifacts[STATE_ARTIFACT]) as f:
            self.package = SessionModelPackage.from_dict(json.load(f))

    def predict(
        self, context: Any, model_input: list[str], params: dict[str, Any] | None = None
    ) -> list[SessionScore]:
        """One :class:`SessionScore` per space-separated event sequence."""
        if self.package is None:
            self.load_context(context)
        assert self.package is not None
        model = self.package.model
        limit = model.threshold - 1e-9
        out = []
        for sequence in model_input:
            score = model.score_one(str(sequence).split())
            out.append(SessionScore(score=score, anomaly=score >= limit))
        return out


mlflow.models.set_model(LogSessionsPyfunc())
