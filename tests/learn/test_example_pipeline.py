"""The tabular example end to end: YAML pipeline, step cache, MLflow runs, registered model."""

from __future__ import annotations

import importlib
import json
import os
import time
from pathlib import Path

import pytest

from opsloop.learn.mlflow_env import MlflowEnv
from opsloop.learn.mlflow_tracker import MlflowTracker
from opsloop.learn.pipelines import (
    LocalArtifactStore,
    LocalStepCache,
    Pipeline,
    RetryPolicy,
    Runner,
    StepStatus,
    current_step,
    load_pipeline,
    step,
)
from opsloop.learn.registry import ModelRegistry
from opsloop.learn.validation import validate

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "examples" / "tabular" / "pipeline.yaml"
STEPS = ["load", "validate", "split", "train", "evaluate", "register"]
FAST = {"train": {"n_trials": 3, "cv": 3}}

# MLflow's input-example code compares columns with a range, which pandas 3.1 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Operation with range is deprecated")


def steps_module():
    return importlib.import_module("examples.tabular.steps")


@pytest.fixture(autouse=True)
def _importable_examples_and_clean_mlflow_globals(monkeypatch):
    """``examples`` resolves from the repository root; mlflow's process URIs are restored."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        if var in os.environ:
            monkeypatch.setenv(var, os.environ[var])
        else:
            monkeypatch.delenv(var, raising=False)


@pytest.fixture
def env(tmp_path) -> MlflowEnv:
    return MlflowEnv(tmp_path / "home")


def make_runner(tmp_path: Path, env: MlflowEnv | None = None) -> Runner:
    """Artifacts and cache under ``tmp_path``; MLflow tracking when ``env`` is given."""
    return Runner(
        LocalArtifactStore(tmp_path / "artifacts"),
        cache=LocalStepCache(tmp_path / "cache"),
        tracker=MlflowTracker(env) if env is not None else None,
    )


def test_example_runs_then_is_fully_cached_with_mlflow_lineage(tmp_path, env):
    runner = make_runner(tmp_path, env)
    pipeline = load_pipeline(PIPELINE)
    assert list(pipeline.nodes) == STEPS

    started = time.perf_counter()
    first = runner.run(pipeline, params=FAST)
    first_s = time.perf_counter() - started
    errors = {n: s.error for n, s in first.steps.items() if s.error}
    assert first.status.value == "succeeded", errors
    assert {s.status for s in first.steps.values()} == {StepStatus.SUCCEEDED}

    started = time.perf_counter()
    second = runner.run(load_pipeline(PIPELINE), params=FAST)
    second_s = time.perf_counter() - started
    assert {n: s.status for n, s in second.steps.items()} == dict.fromkeys(STEPS, StepStatus.CACHED)
    assert second_s < first_s
    for name in STEPS:
        assert second.steps[name].outputs == first.steps[name].outputs, name

    # outputs: a validated table stored as Parquet, sensible metrics, the registered model
    assert first.steps["validate"].outputs["table"].codec == "parquet"
    assert first.steps["validate"].outputs == first.steps["load"].outputs  # data unchanged
    metrics = runner.output(first, "evaluate")
    assert set(metrics) == {"accuracy", "f1", "roc_auc"}
    assert metrics["accuracy"] > 0.9 and metrics["roc_auc"] > 0.95
    assert first.steps["evaluate"].metrics == pytest.approx(metrics)
    search = runner.output(first, "train.search")
    assert search["n_trials"] == 3 and set(search["best_params"]) == {"C", "class_weight"}
    registered = runner.output(first, "register")
    assert (registered["name"], registered["version"]) == ("tabular-classifier", "1")

    # MLflow: 2 parent runs, a child per step each, trials nested under the train step
    client = env.client()
    experiment = client.get_experiment_by_name("pipeline/tabular-classifier")
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    kinds: dict[str, list] = {}
    for run in runs:
        kinds.setdefault(run.data.tags.get("opsloop.kind", "?"), []).append(run)
    assert {r.info.run_id for r in kinds["pipeline"]} == {
        first.tracker_run_id,
        second.tracker_run_id,
    }
    assert len(kinds["step"]) == 2 * len(STEPS)
    for record in (first, second):
        children = {
            r.data.tags["opsloop.step"]
            for r in kinds["step"]
            if r.data.tags["mlflow.parentRunId"] == record.tracker_run_id
        }
        assert children == set(STEPS)
    train_run = first.steps["train"].tracker_run_id
    assert len(kinds["trial"]) == 3  # the cached second run searched nothing
    assert {r.data.tags["mlflow.parentRunId"] for r in kinds["trial"]} == {train_run}
    assert all("roc_auc" in r.data.metrics for r in kinds["trial"])

    # the registry: one version (register was cached), tagged with its lineage
    versions = ModelRegistry(env).versions("tabular-classifier")
    assert [v["version"] for v in versions] == ["1"]
    version = versions[0]
    register_run = first.steps["register"].tracker_run_id
    assert version["run"]["run_id"] == register_run == registered["run_id"]
    tags = version["tags"]
    assert tags["opsloop.pipeline_run_id"] == first.id
    train_hash = first.steps["split"].outputs["train"].content_hash
    assert tags["opsloop.data_hash"] == train_hash == registered["data_hash"]
    assert json.loads(tags["opsloop.params"]) == search["best_params"]
    assert json.loads(tags["opsloop.metrics"]) == pytest.approx(metrics)
    assert version["run"]["metrics"]["roc_auc"] == pytest.approx(metrics["roc_auc"])

    # the reference profile (drift monitoring's format) and a sample sit on the register run
    from opsloop.learn.monitoring.profile import ReferenceProfile

    assert tags["opsloop.reference_profile"] == f"runs:/{register_run}/reference/profile.json"
    downloaded = Path(client.download_artifacts(register_run, "reference", str(tmp_path / "dl")))
    profile = ReferenceProfile.from_dict(json.loads((downloaded / "profile.json").read_text()))
    train_table = runner.output(first, "split.train")
    assert profile.n_rows == len(train_table)
    assert set(profile.columns) == set(train_table.columns) - {"target"}
    assert profile.columns["mean_radius"].kind == "numeric"
    assert profile.columns["mean_radius"].n == len(train_table)
    assert profile.prediction is not None and profile.prediction.kind == "categorical"
    sample = json.loads((downloaded / "sample.json").read_text())
    assert sample["n_rows"] == len(train_table) and len(sample["rows"]) == 100
    assert set(sample["index"]) <= set(train_table.index)

    # the registered model is the trained one, with a signature
    import mlflow.sklearn

    (tmp_path / "model").mkdir()
    uri = registered["model_uri"]
    loaded = mlflow.sklearn.load_model(uri, dst_path=str(tmp_path / "model"))
    trained = steps_module().load_model(runner.output(first, "train.model"))
    x = runner.output(first, "split.test").drop(columns=["target"])
    assert (loaded.predict_proba(x) == trained.predict_proba(x)).all()
    signature = mlflow.models.get_model_info(uri).signature
    assert signature.inputs.input_names() == list(x.columns)


def test_example_schema_rejects_bad_data_naming_the_column(tmp_path):
    steps = steps_module()
    schema = load_pipeline(PIPELINE).nodes["validate"].params["schema"]

    @step(inputs=(), outputs=("table",))
    def corrupted() -> object:
        table = steps.load()
        table.loc[[3, 10, 20], "mean_radius"] = [-1.0, 250.0, -7.5]
        return table

    p = Pipeline("corrupted")
    p.add(corrupted)
    p.add(validate, inputs={"table": "corrupted"}, params={"schema": schema})
    p.add(steps.split, inputs={"table": "validate"})
    record = make_runner(tmp_path).run(p)
    assert record.status.value == "failed"
    error = record.steps["validate"].error
    assert "column 'mean_radius': 3 rows outside [0, 100] (e.g. -1, 250, -7.5)" in error
    assert record.steps["split"].status is StepStatus.UPSTREAM_FAILED


ATTEMPTS: list[int] = []


@step(inputs=(), outputs=("table",))
def flaky_load() -> object:
    """The example's load, failing on the first attempt as a flaky source would."""
    ATTEMPTS.append(current_step().attempt)
    if current_step().attempt == 1:
        raise ConnectionError("source unavailable")
    return steps_module().load()


def test_a_step_failing_once_is_retried_and_the_run_succeeds(tmp_path):
    steps = steps_module()
    schema = load_pipeline(PIPELINE).nodes["validate"].params["schema"]
    ATTEMPTS.clear()
    p = Pipeline("flaky")
    p.add(flaky_load, retry=RetryPolicy(retries=1, backoff=0.0))
    p.add(validate, inputs={"table": "flaky_load"}, params={"schema": schema})
    p.add(steps.split, inputs={"table": "validate"})
    record = make_runner(tmp_path).run(p)
    assert record.status.value == "succeeded"
    load = record.steps["flaky_load"]
    assert ATTEMPTS == [1, 2] and len(load.attempts) == 2
    assert "ConnectionError: source unavailable" in (load.attempts[0].error or "")
    assert record.steps["split"].status is StepStatus.SUCCEEDED
