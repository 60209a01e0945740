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
import tempfile
from collections.abc import Mapping
from pathlib import Path

from opsloop.learn.detectors.package import SessionModelPackage
from opsloop.learn.mlflow_env import MlflowEnv

__all__ = ["MODEL_ARTIFACT_PATH", "load_package", "register_package"]

MODEL_ARTIFACT_PATH = "model"
STATE_FILE = "state.json"
MAX_TAG = 5000


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
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from opsloop.learn.detectors import pyfunc_model

    client = env.client()
    input_example = [" ".join(example)] if example else None
    with tempfile.TemporaryDirectory(prefix="opsloop-model-") as tmp:
        state = Path(tmp) / STATE_FILE
        state.write_text(json.dumps(package.to_dict()))
        model_dir = Path(tmp) / MODEL_ARTIFACT_PATH
        mlflow.pyfunc.save_model(
            path=str(model_dir),
            python_model=pyfunc_model.__file__,
            artifacts={pyfunc_model.STATE_ARTIFACT: str(state)},
            input_example=input_example,
            pip_requirements=["opsloop", "numpy", "pydantic"],
        )
        client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT_PATH)
    try:
        client.create_registered_model(
            model_name, description="opsloop's log-session anomaly detector (built-in pipeline)"
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = client.get_run(run_id).info.artifact_uri.rstrip("/") + "/" + MODEL_ARTIFACT_PATH
    clean = {str(k)[:250]: str(v)[:MAX_TAG] for k, v in (tags or {}).items()}
    version = client.create_model_version(
        model_name, source, run_id=run_id, tags=clean, description=description
    )
    return str(version.version)


def load_package(env: MlflowEnv, model_name: str, version: str) -> SessionModelPackage:
    """The package of ``model_name`` version ``version`` (reads only its JSON artifact)."""
    import mlflow.artifacts

    client = env.client()
    source = client.get_model_version(model_name, str(version)).source.rstrip("/")
    if source.startswith("file://"):  # the embedded store: read the file in place
        from urllib.parse import unquote, urlparse

        local = Path(unquote(urlparse(source).path)) / "artifacts" / STATE_FILE
        return SessionModelPackage.from_dict(json.loads(local.read_text()))
    with tempfile.TemporaryDirectory(prefix="opsloop-model-") as tmp:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{source}/artifacts/{STATE_FILE}",
            dst_path=tmp,
            tracking_uri=env.tracking_uri,
        )
        document = json.loads(Path(path).read_text())
    return SessionModelPackage.from_dict(document)
