"""Load registered MLflow models as ``mlflow.pyfunc`` models, cached per (name, version).

Any flavour that loads as pyfunc is served. Aliases are resolved with an ``MlflowClient`` on
the given store, and the version's artifacts are fetched through that same store (never through
MLflow's process-wide tracking URI), so a gateway can serve from any store it is pointed at.

A model whose input signature is a table of named columns (and not derived from type hints)
is *tabular*: the gateway may put rows of several requests into one ``predict`` call.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsloop.learn.serving.errors import ModelNotFound, ModelUnavailable

if TYPE_CHECKING:
    from opsloop.learn.mlflow_env import MlflowEnv

log = logging.getLogger("opsloop.learn.serving")


@dataclass
class LoadedModel:
    """One registered model version, loaded and ready to predict."""

    name: str
    version: str
    model: Any  # mlflow.pyfunc.PyFuncModel
    input_schema: Any  # mlflow.types.Schema or None
    columns: list[str] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0

    @property
    def tabular(self) -> bool:
        """Whether the model takes a table of named columns (so rows can be batched)."""
        return bool(self.columns)

    @property
    def flavor(self) -> str:
        """The model's loader module, e.g. ``mlflow.sklearn``."""
        return str(getattr(self.model, "loader_module", "") or "")


def _columns(model: Any) -> tuple[Any, list[str], list[str]]:
    """``(schema, columns, required)``; no columns unless the signature is a named table."""
    metadata = model.metadata
    schema = metadata.get_input_schema()
    if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
        return schema, [], []
    hinted = getattr(metadata, "_is_signature_from_type_hint", None)
    if hinted is not None and hinted():
        return schema, [], []
    return schema, list(schema.input_names()), list(schema.required_input_names())


class ModelLoader:
    """Resolves aliases and loads versions of registered models from one MLflow store."""

    def __init__(
        self, tracking_uri: str, registry_uri: str | None = None, *, env: MlflowEnv | None = None
    ):
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.env = env
        self._client: Any = None
        self._cache: dict[tuple[str, str], LoadedModel] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    @classmethod
    def from_env(cls, env: MlflowEnv) -> ModelLoader:
        """A loader on an opsloop home's MLflow store (the embedded one is created on first use)."""
        return cls(env.tracking_uri, env.registry_uri, env=env)

    @property
    def client(self) -> Any:
        """The ``MlflowClient`` on the store (created on first use)."""
        if self._client is None:
            from mlflow.tracking import MlflowClient

            if self.env is not None:
                self.env.ensure()

            self._client = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
            )
        return self._client

    def exists(self, name: str) -> bool:
        """Whether a registered model ``name`` exists."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            return False
        return True

    def resolve(self, name: str, alias: str) -> str | None:
        """The version ``alias`` points at; ``None`` if the alias is unset.

        Raises :class:`ModelNotFound` when there is no such registered model; registry
        outages propagate.
        """
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST" and "not found" not in exc.message:
                raise
        if not self.exists(name):
            raise ModelNotFound(f"no registered model {name!r}", model=name)
        return None

    def cached(self, name: str, version: str) -> LoadedModel | None:
        """The loaded version if it is in the cache."""
        return self._cache.get((name, str(version)))

    def load(self, name: str, version: str) -> LoadedModel:
        """Version ``version`` of ``name``, loaded once and cached.

        Concurrent callers for the same version wait for one load. Raises
        :class:`ModelNotFound` for an unknown model or version and :class:`ModelUnavailable`
        when the artifacts cannot be loaded.
        """
        key = (name, str(version))
        found = self._cache.get(key)
        if found is not None:
            return found
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            found = self._cache.get(key)
            if found is not None:
                return found
            loaded = self._load(name, str(version))
            self._cache[key] = loaded
            return loaded

    def _load(self, name: str, version: str) -> LoadedModel:
        import mlflow.artifacts
        import mlflow.pyfunc
        from mlflow.exceptions import MlflowException

        started = time.perf_counter()
        try:
            uri = self.client.get_model_version_download_uri(name, version)
        except MlflowException:
            raise ModelNotFound(
                f"model {name!r} has no version {version}", model=name, version=version
            ) from None
        try:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
            )
            model = mlflow.pyfunc.load_model(path)
        except Exception as exc:
            log.exception("model %s version %s failed to load", name, version)
            raise ModelUnavailable(
                f"model {name!r} version {version} failed to load: {exc}",
                model=name,
                version=version,
            ) from exc
        schema, columns, required = _columns(model)
        seconds = time.perf_counter() - started
        log.info("loaded model %s version %s in %.2f s", name, version, seconds)
        return LoadedModel(name, version, model, schema, columns, required, load_seconds=seconds)

    def evict(self, name: str, version: str) -> None:
        """Drop a version from the cache (requests still holding it finish normally)."""
        key = (name, str(version))
        self._cache.pop(key, None)
        with self._guard:
            self._locks.pop(key, None)
