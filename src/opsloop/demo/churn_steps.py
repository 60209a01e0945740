"""The demo's churn model as a pipeline: data → train → register (with a reference profile).

The data come from the simulator's customer law (``opsloop.simulate.churn``), so the model is
good on the undrifted population; ``shift_sigma`` trains on drifted customers instead (what the
retraining runbook does after a drift incident). ``register`` logs an MLflow model with the
training set's reference profile (for drift monitoring) and registers a version of ``churn``;
the first version becomes ``champion``, later ones ``challenger`` (an operator promotes them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opsloop.learn.pipelines import current_step, log_metric, step

NUMERIC = ("tenure", "monthly_charges", "support_tickets", "paperless")
CATEGORICAL = ("plan", "payment_method")


@step(inputs=(), outputs=("table",))
def customers(n: int = 4000, seed: int = 0, shift_sigma: float = 0.0) -> Any:
    """Customer records with their churn outcome (``churned``), as a DataFrame."""
    import numpy as np
    import pandas as pd

    from opsloop.simulate.churn import customers as make
    from opsloop.simulate.churn import outcomes

    rng = np.random.default_rng(seed)
    records = make(rng, n, shift_sigma)
    table = pd.DataFrame.from_records(records)
    table["churned"] = outcomes(rng, records)
    return table


def _pipeline(c: float) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), list(NUMERIC)),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(C=c, max_iter=500))])


@step(outputs=("model", "metrics"))
def train(table: Any, c: float = 1.0, seed: int = 0) -> tuple[bytes, dict[str, float]]:
    """A logistic regression on one-hot plan/payment and scaled numbers; holdout metrics."""
    import pickle

    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    x = table[list(NUMERIC + CATEGORICAL)]
    y = table["churned"]
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=seed)
    model = _pipeline(c).fit(x_tr, y_tr)
    metrics = {
        "accuracy": float(accuracy_score(y_te, model.predict(x_te))),
        "roc_auc": float(roc_auc_score(y_te, model.predict_proba(x_te)[:, 1])),
    }
    for k, v in metrics.items():
        log_metric(k, v)
    return pickle.dumps(model), metrics


@step(cache=False)
def register(
    model: bytes, table: Any, metrics: dict[str, float], name: str = "churn"
) -> dict[str, Any]:
    """Log, register, and make the first version champion (later ones: challenger)."""
    import pickle

    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from opsloop.learn.monitoring.profile import ReferenceProfile

    ctx = current_step()
    clf = pickle.loads(model)  # noqa: S301 - our own artifact, produced by `train`
    x = table[list(NUMERIC + CATEGORICAL)]
    uri = ctx.tracking_uri or mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    run = mlflow.start_run(run_id=ctx.tracker_run_id) if ctx.tracker_run_id else mlflow.start_run()
    with run as active:
        info = mlflow.sklearn.log_model(
            clf, name="model", signature=infer_signature(x.head(5), clf.predict(x.head(5))),
            registered_model_name=name,
        )  # fmt: skip
        profile = ReferenceProfile.from_data(x, prediction=clf.predict(x))
        mlflow.log_dict(profile.to_dict(), "reference/profile.json")
        run_id = active.info.run_id
    version = str(info.registered_model_version)
    registry = _registry(uri)
    registry.client.set_model_version_tag(name, version, "opsloop.pipeline_run_id", ctx.run_id)
    registry.client.set_model_version_tag(name, version, "opsloop.metrics", json.dumps(metrics))
    alias = "champion" if registry.resolve(name, "champion") is None else "challenger"
    registry.promote(
        name, version, alias, actor=f"pipeline:{ctx.run_id[:12]}",
        reason=f"trained: roc_auc {metrics.get('roc_auc', float('nan')):.3f}",
    )  # fmt: skip
    return {"name": name, "version": version, "alias": alias, "run_id": run_id}


def _registry(uri: str) -> Any:
    """The platform's audited registry when this runs inside ``opsloop up``, else a plain one."""
    from opsloop.learn.detectors.bindings import get_services
    from opsloop.learn.mlflow_env import MlflowEnv
    from opsloop.learn.registry import ModelRegistry

    registry = get_services("platform").registry
    if registry is not None:
        return registry
    return ModelRegistry(MlflowEnv(Path.cwd(), uri))
