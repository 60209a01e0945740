"""Register a log-session package as an MLflow model version, and read one back.

A version is a pyfunc model (:mod:`opsloop.learn.detectors.pyfunc_model`) logged under the
``model`` artifact path of an MLflow run (the pipeline's register step), with the package JSON
as its ``state`` artifact. Lineage goes on the version as tags (``opsloop.*``). Reading a version
back needs only that JSON file, not the pyfunc machinery: the live engine reads it in place on
the embedded store (a download otherwise) without loading the pyfunc model.

MLflow is imported inside the functions.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opsloop.learn.detectors.package import SessionModelPackage
from opsloop.learn.mlflow_env import MlflowEnv

__all__ = [
    "MODEL_ARTIFACT_PATH",
    "load_json_state",
    "load_package",
    "pipeline_registry",
    "promote_version",
    "register_json_model",
    "register_package",
    "register_run",
]

log = logging.getLogger("opsloop.learn.detectors")

MODEL_ARTIFACT_PATH = "model"
STATE_FILE = "state.json"
MAX_TAG = 5000


def register_json_model(
    env: MlflowEnv,
    document: Mapping[str, Any],
    *,
    model_name: str,
    run_id: str,
    pyfunc_file: str,
    state_artifact: str,
    model_description: str,
    input_example: Any = None,
    pip_requirements: Sequence[str] = ("opsloop", "pydantic"),
    tags: Mapping[str, str] | None = None,
    description: str = "",
) -> str:
    """Log ``document`` (JSON) as the state of a pyfunc model in run ``run_id``, register it.

    ``pyfunc_file`` is the models-from-code file of the pyfunc (nothing is pickled) and
    ``state_artifact`` the artifact key it reads the JSON from. Returns the new version.
    """
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    client = env.client()
    with tempfile.TemporaryDirectory(prefix="opsloop-model-") as tmp:
        state = Path(tmp) / STATE_FILE
        state.write_text(json.dumps(document, sort_keys=True))
        model_dir = Path(tmp) / MODEL_ARTIFACT_PATH
        mlflow.pyfunc.save_model(
            path=str(model_dir),
            python_model=pyfunc_file,
            artifacts={state_artifact: str(state)},
            input_example=input_example,
            pip_requirements=list(pip_requirements),
        )
        client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT_PATH)
    try:
        client.create_registered_model(model_name, description=model_description)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = client.get_run(run_id).info.artifact_uri.rstrip("/") + "/" + MODEL_ARTIFACT_PATH
    clean = {str(k)[:250]: str(v)[:MAX_TAG] for k, v in (tags or {}).items()}
    version = client.create_model_version(
        model_name, source, run_id=run_id, tags=clean, description=description
    )
    return str(version.version)


def load_json_state(env: MlflowEnv, model_name: str, version: str) -> dict[str, Any]:
    """The JSON state of a version registered by :func:`register_json_model` (read in place
    on the embedded store, downloaded otherwise; the pyfunc model itself is not loaded)."""
    import mlflow.artifacts

    source = env.client().get_model_version(model_name, str(version)).source.rstrip("/")
    if source.startswith("file://"):  # the embedded store: read the file in place
        from urllib.parse import unquote, urlparse

        local = Path(unquote(urlparse(source).path)) / "artifacts" / STATE_FILE
        return json.loads(local.read_text())
    with tempfile.TemporaryDirectory(prefix="opsloop-model-") as tmp:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{source}/artifacts/{STATE_FILE}",
            dst_path=tmp,
            tracking_uri=env.tracking_uri,
        )
        return json.loads(Path(path).read_text())


def register_package(
    env: MlflowEnv,
    package: SessionModelPackage,
    model_name: str,
    run_id: str,
    tags: Mapping[str, str] | None = None,
    description: str = "",
    example: list[str] | None = None,
) -> str:
    """Log ``package`` as a pyfunc model in run ``run_id`` and register it; returns the version.

    ``example`` (one session's events) becomes the model's input example.
    """
    from opsloop.learn.detectors import pyfunc_model

    return register_json_model(
        env, package.to_dict(), model_name=model_name, run_id=run_id,
        pyfunc_file=pyfunc_model.__file__, state_artifact=pyfunc_model.STATE_ARTIFACT,
        model_description="opsloop's log-session anomaly detector (built-in pipeline)",
        input_example=[" ".join(example)] if example else None,
        pip_requirements=("opsloop", "numpy", "pydantic"), tags=tags, description=description,
    )  # fmt: skip


def load_package(env: MlflowEnv, model_name: str, version: str) -> SessionModelPackage:
    """The package of ``model_name`` version ``version`` (reads only its JSON artifact)."""
    return SessionModelPackage.from_dict(load_json_state(env, model_name, version))


def pipeline_registry(services: str, mlflow_home: str, mlflow_uri: str | None) -> Any:
    """The registry a detector pipeline writes to: the platform's (audited) when bound as
    ``services``, else a plain one on ``mlflow_home``/``mlflow_uri`` (scripts, tests)."""
    from opsloop.learn.detectors.bindings import get_services
    from opsloop.learn.registry import ModelRegistry

    bound = get_services(services).registry
    if bound is not None:
        return bound
    if not mlflow_home:
        raise RuntimeError(f"no registry bound as {services!r} and no mlflow_home given")
    return ModelRegistry(MlflowEnv(Path(mlflow_home), mlflow_uri or None))


def register_run(env: MlflowEnv, pipeline: str, client: Any) -> tuple[str, str | None, bool]:
    """``(run_id, parent_run_id, own)``: the MLflow run a register step logs the model into.

    The step's own tracker run when it tracks into this store; else a new ``register`` run in
    experiment ``pipeline/<pipeline>`` (``own`` is then True: the caller puts the step's
    metrics on it, as no tracker run carries them).
    """
    from opsloop.learn.pipelines import current_step

    ctx = current_step()
    run_id = ctx.tracker_run_id
    if run_id is None or ctx.tracking_uri != env.tracking_uri:
        experiment = env.experiment_id(f"pipeline/{pipeline}", client)
        return client.create_run(experiment, run_name="register").info.run_id, None, True
    return run_id, client.get_run(run_id).data.tags.get("mlflow.parentRunId"), False


def promote_version(
    registry: Any,
    registered: Mapping[str, Any],
    better: bool,
    reason: str,
    evaluated: str | None,
    actor: str,
) -> dict[str, Any]:
    """The promote step of a detector pipeline, once it has judged the new version.

    ``better``/``reason``: the evaluation's verdict against the champion it evaluated
    (version ``evaluated``, ``None`` when there was none). The version becomes ``champion``
    when better and the champion has not moved since it was evaluated (a concurrent run
    promoted another), else ``challenger``; the decision goes on the version as a tag, the
    promotion into the (audited) registry as ``actor``.
    """
    from opsloop.learn.pipelines import log_metric

    name, version = registered["model"], registered["version"]
    current = registry.resolve(name, "champion")
    if better and current != evaluated:
        better, reason = False, f"the champion changed during the run ({evaluated} -> {current})"
    alias = "champion" if better else "challenger"
    registry.promote(name, version, alias, actor=actor, reason=reason)
    registry.client.set_model_version_tag(name, version, "opsloop.decision", f"{alias}: {reason}")
    log_metric("promoted", float(better))
    log.info("%s version %s -> %s (%s)", name, version, alias, reason)
    return {"version": version, "alias": alias, "promoted": better, "reason": reason}
