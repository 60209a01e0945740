"""Registry operations on MLflow's model registry: list, show, promote, rollback.

Aliases are MLflow's own (``champion``, ``challenger``, any other). What MLflow lacks is a
memory of where an alias pointed before: each move is appended to the registered model's
tag ``opsloop.alias_history.<alias>`` (a JSON list of ``{version, at, actor, reason}``,
newest last, capped), so :meth:`ModelRegistry.rollback` can move the alias back in one call.
Every move is also reported to ``on_change`` (the platform writes it to the audit log).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opsloop.learn.mlflow_env import MlflowEnv

HISTORY_TAG = "opsloop.alias_history."
HISTORY_CAP = 50
ALIAS_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


class RegistryError(ValueError):
    """An unknown model, version or alias, or nothing to roll back to."""


@dataclass(frozen=True)
class AliasMove:
    """One alias change, as audited."""

    model: str
    alias: str
    version: str
    previous: str | None
    actor: str
    reason: str
    action: str  # "promote" or "rollback"


ChangeHook = Callable[[AliasMove], None]


def _ms(value: Any) -> int | None:
    return int(value) if value is not None else None


class ModelRegistry:
    """Promote and roll back registered models by alias; read versions with their runs."""

    def __init__(self, env: MlflowEnv, on_change: ChangeHook | None = None):
        self.env = env
        self.on_change = on_change
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The ``MlflowClient``."""
        if self._client is None:
            self._client = self.env.client()
        return self._client

    # -- reads ---------------------------------------------------------------------------
    def _model(self, name: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException:
            raise RegistryError(f"no registered model {name!r}") from None

    def list_models(self) -> list[dict[str, Any]]:
        """Every registered model with its latest version and aliases."""
        out = []
        for model in self.client.search_registered_models(max_results=1000):
            versions = [int(v.version) for v in (model.latest_versions or [])]
            out.append(
                {
                    "name": model.name,
                    "description": model.description or "",
                    "latest_version": str(max(versions)) if versions else None,
                    "aliases": {k: str(v) for k, v in (model.aliases or {}).items()},
                    "tags": {
                        k: v for k, v in (model.tags or {}).items() if not k.startswith("opsloop.")
                    },
                    "updated_at_ms": _ms(model.last_updated_timestamp),
                }
            )
        return sorted(out, key=lambda m: m["name"])

    def versions(self, name: str) -> list[dict[str, Any]]:
        """All versions of ``name``, newest first, each with its run's metrics and params."""
        model = self._model(name)
        aliases: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        found = self.client.search_model_versions(f"name='{_quote(name)}'", max_results=1000)
        out = []
        for v in sorted(found, key=lambda v: int(v.version), reverse=True):
            run: dict[str, Any] = {}
            if v.run_id:
                try:
                    r = self.client.get_run(v.run_id)
                    run = {
                        "run_id": v.run_id,
                        "metrics": dict(r.data.metrics),
                        "params": dict(r.data.params),
                        "experiment_id": r.info.experiment_id,
                    }
                except Exception:
                    run = {"run_id": v.run_id}
            out.append(
                {
                    "version": str(v.version),
                    "aliases": sorted(aliases.get(str(v.version), [])),
                    "status": v.status,
                    "source": v.source,
                    "created_at_ms": _ms(v.creation_timestamp),
                    "description": v.description or "",
                    "tags": dict(v.tags or {}),
                    "run": run,
                }
            )
        return out

    def show(self, name: str) -> dict[str, Any]:
        """The model, its versions and the history of each alias."""
        model = self._model(name)
        return {
            "name": model.name,
            "description": model.description or "",
            "aliases": {k: str(v) for k, v in (model.aliases or {}).items()},
            "versions": self.versions(name),
            "history": {
                k[len(HISTORY_TAG) :]: json.loads(v)
                for k, v in (model.tags or {}).items()
                if k.startswith(HISTORY_TAG)
            },
        }

    def resolve(self, name: str, alias: str = "champion") -> str | None:
        """The version ``alias`` points at, or ``None``."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    # -- writes --------------------------------------------------------------------------
    def _history(self, name: str, alias: str) -> list[dict[str, Any]]:
        tags = self._model(name).tags or {}
        try:
            return list(json.loads(tags.get(HISTORY_TAG + alias, "[]")))
        except ValueError:
            return []

    def _move(
        self, name: str, alias: str, version: str, actor: str, reason: str, action: str
    ) -> AliasMove:
        previous = self.resolve(name, alias)
        self.client.set_registered_model_alias(name, alias, version)
        history = self._history(name, alias)
        if action == "rollback" and history:
            history.pop()  # the entry of the version we move away from
        else:
            history.append(
                {"version": version, "at": time.time(), "actor": actor, "reason": reason}
            )
        self.client.set_registered_model_tag(
            name, HISTORY_TAG + alias, json.dumps(history[-HISTORY_CAP:])
        )
        move = AliasMove(name, alias, version, previous, actor, reason, action)
        if self.on_change is not None:
            self.on_change(move)
        return move

    def promote(
        self,
        name: str,
        version: str | int,
        alias: str = "champion",
        *,
        actor: str = "system",
        reason: str = "",
    ) -> AliasMove:
        """Point ``alias`` at ``version``; remember where it pointed for rollback."""
        from mlflow.exceptions import MlflowException

        alias = _check_alias(alias)
        version = str(version)
        try:
            self.client.get_model_version(name, version)
        except MlflowException:
            self._model(name)
            raise RegistryError(f"model {name!r} has no version {version}") from None
        current = self.resolve(name, alias)
        if current is not None and not self._history(name, alias):
            # the alias was set outside opsloop: remember that version so rollback finds it
            self.client.set_registered_model_tag(
                name,
                HISTORY_TAG + alias,
                json.dumps([{"version": current, "at": None, "actor": "", "reason": "external"}]),
            )
        return self._move(name, alias, version, actor, reason, "promote")

    def rollback(
        self, name: str, alias: str = "champion", *, actor: str = "system", reason: str = ""
    ) -> AliasMove:
        """Move ``alias`` back to the version it pointed at before its last promotion."""
        alias = _check_alias(alias)
        history = self._history(name, alias)
        current = self.resolve(name, alias)
        if current is None:
            raise RegistryError(f"model {name!r} has no alias {alias!r} to roll back")
        earlier = [h for h in history[:-1] if h.get("version") and h["version"] != current]
        if len(history) < 2 or not earlier:
            raise RegistryError(
                f"model {name!r}: alias {alias!r} has no earlier version to roll back to"
            )
        target = history[-2]["version"]
        return self._move(name, alias, target, actor, reason, "rollback")


def _check_alias(alias: str) -> str:
    """Aliases are lower-case words (MLflow rejects ``latest`` and version-like names).

    >>> _check_alias("champion")
    'champion'
    >>> _check_alias("Latest")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    opsloop.learn.registry.RegistryError: alias 'Latest': use lower-case letters, ...
    """
    low = alias.lower()
    if (
        not alias
        or alias != low
        or set(alias) - ALIAS_CHARS
        or low == "latest"
        or (low.startswith("v") and low[1:].isdigit())
    ):
        raise RegistryError(
            f"alias {alias!r}: use lower-case letters, digits, '_' or '-' (not 'latest' or 'v<N>')"
        )
    return alias


def _quote(name: str) -> str:
    return name.replace("'", "\\'")
