"""Steps of the tabular classifier example (wired together in ``pipeline.yaml``).

load -> validate -> split -> train (Optuna search, trials in MLflow) -> evaluate -> register

Every step is deterministic: the data is scikit-learn's bundled breast-cancer table (no
network), splits and the search are seeded, and tables are stored as Parquet with stable
bytes. A second run with the same code, params and data is therefore answered from the
step cache, ``register`` included: re-running an unchanged pipeline does not register a
duplicate model version (see ``README.md``).

Heavy libraries are imported inside the steps, so importing this module is cheap.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from typing import Any

from opsloop.learn.pipelines import current_step, log_metric, step
from opsloop.learn.pipelines.parquet import frame_hash
from opsloop.learn.tuning import optuna_search

TARGET = "target"
PROFILE_PATH = "reference/profile.json"
SAMPLE_PATH = "reference/sample.json"


# -- helpers (not steps) ---------------------------------------------------------------------
def features(table: Any, target: str = TARGET) -> tuple[Any, Any]:
    """``(X, y)``: every column but ``target``, and ``target``."""
    return table.drop(columns=[target]), table[target]


def make_model(params: Mapping[str, Any], seed: int) -> Any:
    """The model family searched: standardised features + logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed, **dict(params))
    )


def dump_model(model: Any) -> bytes:
    """Model -> bytes for the artifact store (pickle: byte-identical for identical fits)."""
    return pickle.dumps(model, protocol=5)


def load_model(data: bytes) -> Any:
    """Bytes -> model. Only for artifacts this pipeline wrote into its own store."""
    return pickle.loads(data)  # noqa: S301 - our own content-addressed artifact


def row_sample(table: Any, n: int = 100, seed: int = 0) -> dict[str, Any]:
    """A seeded sample of ``n`` rows as JSON records (with their row index)."""
    sample = table.sample(n=min(n, len(table)), random_state=seed)
    return {
        "n_rows": len(table),
        "index": [int(i) if isinstance(i, int) else str(i) for i in sample.index.tolist()],
        "rows": json.loads(sample.to_json(orient="records")),
    }


# -- steps -------------------------------------------------------------------------------------
@step(inputs=(), outputs=("table",))
def load(dataset: str = "breast_cancer") -> Any:
    """The raw table: scikit-learn's bundled breast-cancer data (569 rows, 30 features).

    Column names become snake_case; ``target`` is 1 for benign, 0 for malignant.
    """
    from sklearn.datasets import load_breast_cancer

    if dataset != "breast_cancer":
        raise ValueError(f"unknown dataset {dataset!r}; this example ships 'breast_cancer'")
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [str(c).strip().replace(" ", "_") for c in frame.columns]
    return frame


@step(outputs=("train", "test"))
def split(
    table: Any, test_size: float = 0.25, seed: int = 42, target: str = TARGET
) -> dict[str, Any]:
    """Stratified train/test split (row index kept, for lineage)."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        table, test_size=test_size, random_state=seed, stratify=table[target]
    )
    log_metric("train_rows", len(train))
    log_metric("test_rows", len(test))
    return {"train": train, "test": test}


@step(outputs=("model", "search"))
def train(
    train: Any,
    space: Mapping[str, Any] | None = None,
    n_trials: int = 20,
    cv: int = 5,
    metric: str = "roc_auc",
    seed: int = 42,
    target: str = TARGET,
) -> dict[str, Any]:
    """Tune the model with Optuna (cross-validated ``metric``), then fit the best on ``train``.

    Each trial is an MLflow run nested under this step's run. Outputs the fitted model
    (bytes) and the search summary (best params and score, trial count).
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x, y = features(train, target)
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    space = space or {"C": {"low": 1e-3, "high": 100.0, "log": True}}

    def objective(params: dict[str, Any]) -> float:
        scores = cross_val_score(make_model(params, seed), x, y, cv=folds, scoring=metric)
        return float(scores.mean())

    result = optuna_search(
        objective, space, n_trials=n_trials, direction="maximize", seed=seed, metric=metric
    )
    model = make_model(result.best_params, seed).fit(x, y)
    search = {
        "best_params": result.best_params,
        "best_value": result.best_value,
        "metric": metric,
        "n_trials": len(result.trials),
    }
    return {"model": dump_model(model), "search": search}


@step
def evaluate(model: bytes, test: Any, target: str = TARGET) -> dict[str, float]:
    """Accuracy, F1 and ROC AUC on the held-out test set (also logged as metrics)."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    clf = load_model(model)
    x, y = features(test, target)
    predicted = clf.predict(x)
    metrics = {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted)),
        "roc_auc": float(roc_auc_score(y, clf.predict_proba(x)[:, 1])),
    }
    for key, value in metrics.items():
        log_metric(key, value)
    return metrics


@step
def register(
    model: bytes,
    train: Any,
    search: Mapping[str, Any],
    metrics: Mapping[str, float],
    name: str = "tabular-classifier",
    target: str = TARGET,
    sample_rows: int = 100,
    seed: int = 42,
) -> dict[str, Any]:
    """Log the model to MLflow (signature, input example) and register a new version.

    The model goes into this step's MLflow run (the pipeline tracker's child run; without
    a tracker, a new run at the process' tracking URI). The version is tagged with its
    lineage: pipeline run id, content hash of the training table, the model's params and
    the test metrics. For drift monitoring the run also gets ``reference/profile.json``
    (:class:`~opsloop.learn.monitoring.profile.ReferenceProfile` of the training features
    and of the model's predictions on them) and ``reference/sample.json`` (seeded rows).

    Cached like any step: with unchanged inputs and params it is not re-run, so an
    unchanged pipeline does not pile up identical versions. Returns where the model is.
    """
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    from opsloop.learn.monitoring.profile import ReferenceProfile

    ctx = current_step()
    uri = ctx.tracking_uri or mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    if ctx.tracking_uri:
        mlflow.set_registry_uri(uri)
    clf = load_model(model)
    x, _ = features(train, target)
    example = x.head(5)
    data_hash = frame_hash(train)
    run = (
        mlflow.start_run(run_id=ctx.tracker_run_id)
        if ctx.tracker_run_id
        else mlflow.start_run(run_name=f"register-{name}")
    )
    with run as active:
        info = mlflow.sklearn.log_model(
            clf,
            name="model",
            signature=infer_signature(example, clf.predict(example)),
            input_example=example,
            registered_model_name=name,
            pip_requirements=_requirements(),
        )
        profile = ReferenceProfile.from_data(x, prediction=clf.predict(x))
        mlflow.log_dict(profile.to_dict(), PROFILE_PATH)
        mlflow.log_dict(row_sample(train, sample_rows, seed), SAMPLE_PATH)
        run_id = active.info.run_id
    version = str(info.registered_model_version)
    tags = {
        "opsloop.pipeline_run_id": ctx.run_id,
        "opsloop.step": ctx.step,
        "opsloop.data_hash": data_hash,
        "opsloop.params": json.dumps(dict(search.get("best_params", {})), sort_keys=True),
        "opsloop.search": json.dumps(
            {k: v for k, v in search.items() if k != "best_params"}, sort_keys=True
        ),
        "opsloop.metrics": json.dumps(dict(metrics), sort_keys=True),
        "opsloop.reference_profile": f"runs:/{run_id}/{PROFILE_PATH}",
    }
    client = MlflowClient(tracking_uri=uri, registry_uri=mlflow.get_registry_uri())
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    for key, value in metrics.items():
        log_metric(key, value)
    return {
        "name": name,
        "version": version,
        "run_id": run_id,
        "model_uri": f"models:/{name}/{version}",
        "data_hash": data_hash,
    }


def _requirements() -> list[str]:
    """Pinned requirements (given explicitly: MLflow's inference imports the model in a
    subprocess, which costs seconds)."""
    from importlib.metadata import version

    return [f"scikit-learn=={version('scikit-learn')}", f"numpy=={version('numpy')}"]
