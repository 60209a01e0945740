"""Where MLflow lives for this opsloop: the embedded store under the home, or a server.

By default tracking and registry share ``sqlite:///<home>/mlflow.db`` and artifacts go to
``<home>/mlartifacts``; ``mlflow_uri`` (``OPSLOOP_MLFLOW_URI``) points at an existing MLflow
server or database instead. Users train with the plain ``mlflow`` API against
:attr:`MlflowEnv.tracking_uri` (``opsloop env`` prints it).

MLflow is imported only when a store or client is first needed, never at CLI start-up.

>>> from pathlib import Path
>>> env = MlflowEnv(Path("/srv/opsloop"))
>>> env.tracking_uri, env.embedded
('sqlite:////srv/opsloop/mlflow.db', True)
>>> MlflowEnv(Path("/srv/opsloop"), "http://mlflow:5000").environ()["MLFLOW_TRACKING_URI"]
'http://mlflow:5000'
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger("opsloop.learn.mlflow")

_ready: set[str] = set()
_ready_lock = threading.Lock()


def _quiet_mlflow() -> None:
    """MLflow logs its table migrations at INFO; our own logs say what matters."""
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration", "mlflow.tracking.fluent"):
        logging.getLogger(name).setLevel(logging.WARNING)


class MlflowEnv:
    """The MLflow tracking and registry location of one opsloop home."""

    def __init__(self, home: Path, uri: str | None = None):
        self.home = Path(home).resolve()
        self.override = uri or None

    @property
    def embedded(self) -> bool:
        """Whether the store is the SQLite file under the home."""
        return self.override is None

    @property
    def db_path(self) -> Path:
        """The embedded store's file."""
        return self.home / "mlflow.db"

    @property
    def artifact_root(self) -> Path:
        """Where the embedded store keeps artifacts (models, files)."""
        return self.home / "mlartifacts"

    @property
    def tracking_uri(self) -> str:
        """The URI to hand to ``mlflow.set_tracking_uri``."""
        return self.override or f"sqlite:///{self.db_path}"

    @property
    def registry_uri(self) -> str:
        """The model registry URI (the same store)."""
        return self.tracking_uri

    def environ(self) -> dict[str, str]:
        """Environment variables that point plain ``mlflow`` code at this store."""
        return {"MLFLOW_TRACKING_URI": self.tracking_uri, "MLFLOW_REGISTRY_URI": self.registry_uri}

    def ensure(self) -> None:
        """Create the embedded store (tables, ``Default`` experiment under our artifact root).

        Idempotent and cheap after the first call in a process. A remote store is left as is.
        """
        if not self.embedded:
            return
        key = str(self.db_path)
        with _ready_lock:
            if key in _ready:
                return
            _quiet_mlflow()
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            self.home.mkdir(parents=True, exist_ok=True)
            self.artifact_root.mkdir(parents=True, exist_ok=True)
            store = SqlAlchemyStore(self.tracking_uri, self.artifact_root.as_uri())
            store.engine.dispose()
            if self.db_path.exists():
                os.chmod(self.db_path, 0o600)
            _ready.add(key)

    def client(self) -> MlflowClient:
        """An ``MlflowClient`` on this store (created on first use)."""
        self.ensure()
        _quiet_mlflow()
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    def activate(self) -> None:
        """Point the process-wide ``mlflow`` fluent API at this store."""
        self.ensure()
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)

    def experiment_id(self, name: str, client: Any = None) -> str:
        """The id of experiment ``name``, created (artifacts under our root) if missing."""
        client = client or self.client()
        found = client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        location = None
        if self.embedded:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            location = (self.artifact_root / safe).as_uri()
        try:
            return str(client.create_experiment(name, artifact_location=location))
        except Exception:
            found = client.get_experiment_by_name(name)  # created meanwhile by another thread
            if found is None:
                raise
            return str(found.experiment_id)

    def ui_argv(self, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
        """The argv of MLflow's own UI server on this store."""
        import sys

        argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.tracking_uri]
        if self.embedded:
            argv += ["--default-artifact-root", self.artifact_root.as_uri()]
        return [*argv, "--host", host, "--port", str(port)]
