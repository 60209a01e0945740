"""Hyperparameter search: an Optuna study run inside a pipeline step, trials in MLflow.

The search space is plain data, so it can be written in a pipeline's YAML params:

.. code-block:: yaml

    space:
      C: {low: 0.001, high: 100, log: true}       # float (log scale)
      max_iter: {low: 100, high: 1000, step: 100}  # int: both bounds are integers
      class_weight: {choices: [null, balanced]}    # categorical

``low``/``high`` give a float range, or an int range when both are integers (force one
with ``type: float`` / ``type: int``); ``log`` and ``step`` are Optuna's. ``choices`` gives
a categorical parameter (values: null, booleans, numbers or strings).

:func:`optuna_search` calls ``objective(params)`` once per trial. Inside a step tracked by
MLflow, every trial becomes an MLflow run nested under the step's run (tag
``mlflow.parentRunId``) with the trial's params and objective value; without a tracker the
trials are simply not logged. The best value is also recorded with
:func:`~opsloop.learn.pipelines.log_metric`. The sampler is seeded (TPE by default), so the
same seed and a deterministic objective give the same trials, the same best params and a
cacheable step.

>>> result = optuna_search(
...     lambda p: -((p["x"] - 2.0) ** 2), {"x": {"low": -10.0, "high": 10.0}},
...     n_trials=30, seed=1)
>>> abs(result.best_params["x"] - 2.0) < 1.0, len(result.trials)
(True, 30)
>>> parse_space({"n": {"low": 1, "high": 5}})[0].kind
'int'
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from opsloop.learn.pipelines.executor import current_step, log_metric

log = logging.getLogger(__name__)

DIMENSION_KEYS = ("low", "high", "log", "step", "choices", "type")
DIRECTIONS = ("maximize", "minimize")
Objective = Callable[[dict[str, Any]], "float | Mapping[str, float]"]


class SearchSpaceError(ValueError):
    """A search space declaration is malformed."""


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: a float or int range, or a set of choices."""

    name: str
    kind: str  # "float", "int" or "categorical"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The value Optuna's ``trial`` proposes for this dimension."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(
            self.name, float(self.low), float(self.high), step=self.step, log=self.log
        )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _dimension(name: str, spec: Any) -> Dimension:
    where = f"search space {name!r}"
    if isinstance(spec, list | tuple):
        spec = {"choices": list(spec)}
    if not isinstance(spec, Mapping):
        raise SearchSpaceError(f"{where}: expected {{low, high}} or {{choices: [...]}}")
    unknown = [k for k in spec if k not in DIMENSION_KEYS]
    if unknown:
        raise SearchSpaceError(
            f"{where}: unknown keys {unknown}; allowed: {', '.join(DIMENSION_KEYS)}"
        )
    if "choices" in spec:
        extra = [k for k in spec if k not in ("choices", "type")]
        choices = spec["choices"]
        if extra:
            raise SearchSpaceError(f"{where}: 'choices' cannot be combined with {extra}")
        if not isinstance(choices, list | tuple) or not choices:
            raise SearchSpaceError(f"{where}: 'choices' must be a non-empty list")
        for choice in choices:
            if choice is not None and not isinstance(choice, bool | int | float | str):
                raise SearchSpaceError(
                    f"{where}: choice {choice!r} is not null, a boolean, a number or a string"
                )
        return Dimension(name, "categorical", choices=tuple(choices))
    low, high = spec.get("low"), spec.get("high")
    if not (_number(low) and _number(high)):
        raise SearchSpaceError(f"{where}: 'low' and 'high' must both be numbers")
    if low > high:
        raise SearchSpaceError(f"{where}: 'low' ({low}) is above 'high' ({high})")
    kind = spec.get("type") or (
        "int" if isinstance(low, int) and isinstance(high, int) else "float"
    )
    if kind not in ("int", "float"):
        raise SearchSpaceError(f"{where}: 'type' must be 'int' or 'float', got {kind!r}")
    use_log = spec.get("log", False)
    if not isinstance(use_log, bool):
        raise SearchSpaceError(f"{where}: 'log' must be true or false")
    if use_log and low <= 0:
        raise SearchSpaceError(f"{where}: a log scale needs 'low' > 0")
    step = spec.get("step")
    if step is not None and (not _number(step) or step <= 0):
        raise SearchSpaceError(f"{where}: 'step' must be a number > 0")
    if step is not None and use_log:
        raise SearchSpaceError(f"{where}: 'step' and 'log' cannot be combined")
    return Dimension(name, kind, low, high, use_log, step)


def parse_space(space: Mapping[str, Any]) -> list[Dimension]:
    """Parse a search space ``{name: {low, high, log, step} | {choices: [...]}}``.

    A bare list is shorthand for ``{choices: [...]}``.
    """
    if isinstance(space, Sequence) and all(isinstance(d, Dimension) for d in space):
        return list(space)
    if not isinstance(space, Mapping) or not space:
        raise SearchSpaceError("the search space must be a non-empty mapping of parameters")
    return [_dimension(str(name), spec) for name, spec in space.items()]


@dataclass(frozen=True)
class TrialResult:
    """One finished trial."""

    number: int
    params: dict[str, Any]
    value: float | None
    state: str
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None


@dataclass(frozen=True)
class SearchResult:
    """The outcome of a search: best params and value, and every trial."""

    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    direction: str
    metric: str
    trials: list[TrialResult]
    parent_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (fit for a step output)."""
        return asdict(self)


class _TrialLogger:
    """Creates one nested MLflow run per trial under ``parent_run_id``."""

    def __init__(self, tracking_uri: str, parent_run_id: str, step: str, attempt: int):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.parent = parent_run_id
        self.experiment = self.client.get_run(parent_run_id).info.experiment_id
        self.tags = {
            "mlflow.parentRunId": parent_run_id,
            "opsloop.kind": "trial",
            "opsloop.step": step,
            "opsloop.attempt": str(attempt),
        }

    def log(
        self, number: int, params: Mapping[str, Any], metrics: Mapping[str, float], status: str
    ) -> str:
        from mlflow.entities import Metric, Param

        from opsloop.learn.mlflow_tracker import param_text

        run = self.client.create_run(
            self.experiment,
            run_name=f"trial-{number}",
            tags={**self.tags, "opsloop.trial": str(number)},
        )
        run_id = str(run.info.run_id)
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            params=[Param(str(k)[:250], param_text(v)) for k, v in params.items()],
            metrics=[
                Metric(str(k)[:250], float(v), now, number)
                for k, v in metrics.items()
                if math.isfinite(float(v))
            ],
        )
        self.client.set_terminated(run_id, status)
        return run_id

    def best(self, result: SearchResult) -> None:
        from mlflow.entities import Param

        from opsloop.learn.mlflow_tracker import param_text

        self.client.set_tag(self.parent, "opsloop.best_trial", str(result.best_trial))
        params = [Param(f"best.{k}"[:250], param_text(v)) for k, v in result.best_params.items()]
        try:
            self.client.log_batch(self.parent, params=params)
        except Exception:  # e.g. a retried attempt found other best params (params are final)
            log.warning("could not log best params on run %s", self.parent, exc_info=True)


def _context() -> tuple[str | None, str | None, str, int]:
    try:
        ctx = current_step()
    except RuntimeError:
        return None, None, "", 1
    return ctx.tracking_uri, ctx.tracker_run_id, ctx.step, ctx.attempt


def _split_result(value: Any, metric: str) -> tuple[float, dict[str, float]]:
    if isinstance(value, Mapping):
        if metric not in value:
            raise KeyError(
                f"the objective returned metrics {sorted(value)} without {metric!r} "
                "(the metric being optimised)"
            )
        metrics = {str(k): float(v) for k, v in value.items()}
        return metrics[metric], metrics
    result = float(value)
    return result, {metric: result}


def _sampler(sampler: Any, seed: int | None) -> Any:
    import optuna

    if sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if isinstance(sampler, str):
        raise ValueError(f"unknown sampler {sampler!r}: use 'tpe', 'random' or an Optuna sampler")
    return sampler


def optuna_search(
    objective: Objective,
    space: Mapping[str, Any],
    *,
    n_trials: int = 20,
    direction: str = "maximize",
    seed: int | None = 0,
    metric: str = "objective",
    sampler: Any = "tpe",
    timeout: float | None = None,
    catch: tuple[type[Exception], ...] = (),
    log_trials: bool = True,
    tracking_uri: str | None = None,
    parent_run_id: str | None = None,
) -> SearchResult:
    """Search ``space`` for the params that optimise ``objective``; return the best.

    * ``objective(params)`` returns the value to optimise, or a mapping of metrics that
      includes ``metric`` (the others are logged on the trial's run too).
    * ``direction``: ``"maximize"`` or ``"minimize"``; ``seed`` seeds the sampler (``"tpe"``,
      ``"random"`` or any Optuna sampler object).
    * ``catch``: exception types that mark a trial failed instead of stopping the search.
    * Trials are logged as MLflow runs nested under ``parent_run_id`` at ``tracking_uri``;
      both default to the running step's tracker run (see
      :func:`~opsloop.learn.pipelines.current_step`). ``log_trials=False`` turns it off.

    Inside a step, the best value is logged as metric ``best_<metric>``.
    """
    import optuna

    dims = parse_space(space)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    ctx_uri, ctx_run, step_name, attempt = _context()
    uri = tracking_uri or ctx_uri
    parent = parent_run_id or ctx_run
    logger = None
    if log_trials and uri and parent:
        logger = _TrialLogger(uri, parent, step_name, attempt)

    trials: list[TrialResult] = []

    def run_trial(trial: Any) -> float:
        params = {d.name: d.suggest(trial) for d in dims}
        try:
            value, metrics = _split_result(objective(dict(params)), metric)
        except Exception as exc:
            run_id = logger.log(trial.number, params, {}, "FAILED") if logger else None
            trials.append(TrialResult(trial.number, params, None, "failed", {}, run_id))
            log.info("trial %d failed: %s", trial.number, exc)
            raise
        run_id = logger.log(trial.number, params, metrics, "FINISHED") if logger else None
        trials.append(TrialResult(trial.number, params, value, "complete", metrics, run_id))
        return value

    optuna_logger = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction=direction, sampler=_sampler(sampler, seed))
        study.optimize(run_trial, n_trials=n_trials, timeout=timeout, catch=catch)
    finally:
        optuna.logging.set_verbosity(optuna_logger)
    complete = [t for t in trials if t.value is not None]
    if not complete:
        raise RuntimeError(f"all {len(trials)} trials failed; see the trial runs or logs")
    best = study.best_trial
    result = SearchResult(
        best_params=dict(best.params),
        best_value=float(best.value),
        best_trial=best.number,
        direction=direction,
        metric=metric,
        trials=trials,
        parent_run_id=parent if logger else None,
    )
    if step_name:
        log_metric(f"best_{metric}", result.best_value)
        log_metric("n_trials", len(trials))
    if logger is not None:
        logger.best(result)
    return result
