"""Hyperparameter search: space parsing, seeded Optuna studies, trials as nested MLflow runs."""

from __future__ import annotations

import doctest

import pytest

from opsloop.learn import tuning
from opsloop.learn.mlflow_env import MlflowEnv
from opsloop.learn.mlflow_tracker import MlflowTracker
from opsloop.learn.pipelines import (
    InMemoryTracker,
    LocalArtifactStore,
    LocalStepCache,
    Pipeline,
    Runner,
    StepStatus,
    step,
)
from opsloop.learn.tuning import SearchSpaceError, optuna_search, parse_space

SPACE = {
    "x": {"low": -5.0, "high": 5.0},
    "n": {"low": 1, "high": 4},
    "mode": {"choices": ["a", "b", None]},
}


def score(params: dict) -> float:
    """Best at x=1, n=3, mode='b' (value 0)."""
    penalty = {"a": 1.0, "b": 0.0, None: 2.0}[params["mode"]]
    return -((params["x"] - 1.0) ** 2) - abs(params["n"] - 3) - penalty


def test_space_parsing():
    dims = {d.name: d for d in parse_space(SPACE)}
    assert (dims["x"].kind, dims["n"].kind, dims["mode"].kind) == ("float", "int", "categorical")
    assert dims["mode"].choices == ("a", "b", None)
    dims = parse_space(
        {
            "C": {"low": 1e-3, "high": 10, "log": True},
            "k": {"low": 1, "high": 9, "type": "float", "step": 0.5},
            "kernel": ["rbf", "linear"],
        }
    )
    assert [(d.kind, d.log, d.step) for d in dims] == [
        ("float", True, None),
        ("float", False, 0.5),
        ("categorical", False, None),
    ]


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({}, "non-empty mapping"),
        ({"x": {"low": 1}}, "'low' and 'high' must both be numbers"),
        ({"x": {"low": 5, "high": 1}}, r"'low' \(5\) is above 'high' \(1\)"),
        ({"x": {"low": 0, "high": 1, "log": True}}, "log scale needs 'low' > 0"),
        ({"x": {"low": 0, "hihg": 1}}, r"unknown keys \['hihg'\]"),
        ({"x": {"choices": []}}, "non-empty list"),
        ({"x": {"choices": [[1, 2]]}}, "is not null, a boolean, a number or a string"),
        ({"x": {"choices": [1], "low": 0}}, "cannot be combined"),
        ({"x": {"low": 0, "high": 1, "type": "complex"}}, "'type' must be 'int' or 'float'"),
    ],
)
def test_space_errors(space, message):
    with pytest.raises(SearchSpaceError, match=message):
        parse_space(space)


def test_search_finds_the_optimum_and_is_reproducible():
    first = optuna_search(score, SPACE, n_trials=40, seed=3)
    again = optuna_search(score, SPACE, n_trials=40, seed=3)
    other = optuna_search(score, SPACE, n_trials=40, seed=4)
    assert first.best_params["mode"] == "b" and first.best_params["n"] == 3
    assert first.best_value > -0.5
    assert [t.params for t in first.trials] == [t.params for t in again.trials]
    assert first.best_params == again.best_params and first.best_value == again.best_value
    assert [t.params for t in first.trials] != [t.params for t in other.trials]
    assert first.trials[first.best_trial].value == first.best_value
    assert first.parent_run_id is None  # no tracker: nothing logged


def test_minimise_with_a_metrics_mapping_and_failed_trials():
    calls = []

    def objective(params):
        calls.append(params)
        if len(calls) == 2:
            raise ArithmeticError("diverged")
        return {"loss": (params["x"] - 2) ** 2, "x_abs": abs(params["x"])}

    result = optuna_search(
        objective,
        {"x": {"low": -4.0, "high": 4.0}},
        n_trials=12,
        direction="minimize",
        metric="loss",
        catch=(ArithmeticError,),
        seed=0,
    )
    states = [t.state for t in result.trials]
    assert states.count("failed") == 1 and len(states) == 12
    assert result.best_value == min(t.value for t in result.trials if t.value is not None)
    best = result.trials[result.best_trial]
    assert set(best.metrics) == {"loss", "x_abs"}
    with pytest.raises(KeyError, match="without 'loss'"):
        optuna_search(lambda p: {"other": 1.0}, {"x": [1, 2]}, n_trials=1, metric="loss")
    with pytest.raises(RuntimeError, match="all 2 trials failed"):
        optuna_search(lambda p: 1 / 0, {"x": [1]}, n_trials=2, catch=(ZeroDivisionError,))
    with pytest.raises(ValueError, match="direction"):
        optuna_search(score, SPACE, direction="up")


@step(inputs=(), outputs=("best",))
def tune(n_trials: int = 5, seed: int = 0) -> dict:
    result = optuna_search(score, SPACE, n_trials=n_trials, seed=seed)
    return {"params": result.best_params, "value": result.best_value}


def test_trials_are_nested_mlflow_runs_under_the_step_run(tmp_path):
    env = MlflowEnv(tmp_path / "home")
    runner = Runner(
        LocalArtifactStore(tmp_path / "a"),
        cache=LocalStepCache(tmp_path / "c"),
        tracker=MlflowTracker(env),
    )
    p = Pipeline("search")
    p.add(tune, params={"n_trials": 4})
    record = runner.run(p)
    assert record.status.value == "succeeded", record.steps["tune"].error
    step_run = record.steps["tune"].tracker_run_id
    best = runner.output(record, "tune")

    client = env.client()
    parent = client.get_run(step_run)
    trials = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{step_run}'",
    )
    assert len(trials) == 4
    assert {r.data.tags["opsloop.kind"] for r in trials} == {"trial"}
    assert {r.info.status for r in trials} == {"FINISHED"}
    by_number = {int(r.data.tags["opsloop.trial"]): r for r in trials}
    assert sorted(by_number) == [0, 1, 2, 3]
    values = [r.data.metrics["objective"] for r in by_number.values()]
    assert max(values) == pytest.approx(best["value"])
    assert set(by_number[0].data.params) == {"x", "n", "mode"}
    # the step run holds the best value and params
    assert parent.data.metrics["best_objective"] == pytest.approx(best["value"])
    assert parent.data.params["best.n"] == str(best["params"]["n"])
    assert record.steps["tune"].metrics["n_trials"] == 4

    # unchanged: the step is cached and no new trials are run
    again = runner.run(p)
    assert again.steps["tune"].status is StepStatus.CACHED
    all_trials = client.search_runs(
        [parent.info.experiment_id], filter_string="tags.`opsloop.kind` = 'trial'"
    )
    assert len(all_trials) == 4


def test_tracker_without_mlflow_just_skips_trial_logging(tmp_path):
    runner = Runner(LocalArtifactStore(tmp_path), tracker=InMemoryTracker())
    p = Pipeline("search")
    p.add(tune, params={"n_trials": 3})
    record = runner.run(p)
    assert record.status.value == "succeeded", record.steps["tune"].error
    assert record.steps["tune"].metrics["n_trials"] == 3


def test_doctests():
    assert doctest.testmod(tuning).failed == 0
