"""opsloop's own detectors as models: built-in training pipelines and their registered form.

* :mod:`~opsloop.learn.detectors.log_sessions`: the ``detector-log-sessions`` pipeline (train
  the log-session model, evaluate it against the champion, register, promote).
* :mod:`~opsloop.learn.detectors.metric_settings`: the ``detector-metric-settings`` pipeline
  (tune the metric detector's alarm settings per series family on operators' verdicts,
  evaluate against the champion, register, promote).
* :mod:`~opsloop.learn.detectors.package`: the JSON form of a registered session model.
* :mod:`~opsloop.learn.detectors.event_map`: live session events into a model's vocabulary.
* :mod:`~opsloop.learn.detectors.mlflow_io`: register and load versions (MLflow, lazily).
* :mod:`~opsloop.learn.detectors.bindings`: live objects the steps reach by name.

:func:`register_builtins` puts the built-in pipelines in the platform's catalogue
(:mod:`opsloop.services.pipelines` calls it). Nothing heavy is imported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsloop.config import Settings
    from opsloop.learn.pipelines import Pipeline

__all__ = ["register_builtins"]


def _log_sessions(settings: Settings) -> Pipeline:
    from opsloop.learn.detectors.log_sessions import pipeline_for_settings

    return pipeline_for_settings(settings)


def _metric_settings(settings: Settings) -> Pipeline:
    from opsloop.learn.detectors.metric_settings import pipeline_for_settings

    return pipeline_for_settings(settings)


def register_builtins(register: Callable[..., Any]) -> None:
    """Call ``register(name, factory(settings) -> Pipeline, description)`` per built-in."""
    register(
        "detector-log-sessions",
        _log_sessions,
        "Train the log-session detector on stored telemetry labelled by operators' feedback "
        "(or a sessions CSV), evaluate it against the champion, register it, promote it if "
        "better by models.promote_margin.",
    )
    register(
        "detector-metric-settings",
        _metric_settings,
        "Tune the metric detector's alarm settings (alarm_p, refractory) per series family on "
        "stored samples and operators' verdicts on metric anomalies, evaluate them against the "
        "champion's, register them, promote them if better by models.promote_margin.",
    )
