"""The MLflow pyfunc flavour of registered metric alarm settings.

Logged from code like :mod:`~opsloop.learn.detectors.pyfunc_model`: MLflow copies this file into
the model directory and runs it at load time; the state is the settings JSON (artifact
``state``: ``{"settings": {family: {"alarm_p", "refractory"}}, ...}``). Nothing is pickled.

Input: metric names (series families). Output: the alarm settings the engine runs for each, the
built-in defaults for a family the version does not tune (``tuned`` false).

This module imports MLflow at import time; only the register step and MLflow's loader import it.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow.models
import mlflow.pyfunc
from pydantic import BaseModel

STATE_ARTIFACT = "state"
DEFAULTS = {"alarm_p": 1e-3, "refractory": 100}  # DefaultMetricDetector's; see metric_data


class FamilySettings(BaseModel):
    """The alarm settings of one series family."""

    alarm_p: float
    refractory: int
    tuned: bool


class MetricSettingsPyfunc(mlflow.pyfunc.PythonModel):
    """Looks up the alarm settings of series families."""

    settings: dict[str, dict[str, Any]] | None = None

    def load_context(self, context: Any) -> None:
        """Read the settings JSON from the ``state`` artifact."""
        with open(context.artifacts[STATE_ARTIFACT]) as f:
            self.settings = dict(json.load(f)["settings"])

    def predict(
        self, context: Any, model_input: list[str], params: dict[str, Any] | None = None
    ) -> list[FamilySettings]:
        """The settings of each named family."""
        if self.settings is None:
            self.load_context(context)
        assert self.settings is not None
        out = []
        for family in model_input:
            own = self.settings.get(str(family))
            s = {**DEFAULTS, **(own or {})}
            out.append(
                FamilySettings(
                    alarm_p=float(s["alarm_p"]),
                    refractory=int(s["refractory"]),
                    tuned=own is not None,
                )
            )
        return out


mlflow.models.set_model(MetricSettingsPyfunc())
