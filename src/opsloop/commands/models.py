"""``opsloop models``: list, show, promote and roll back registered models (MLflow registry)."""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Registered models: list, show, promote, rollback.", no_args_is_help=True)
HomeOpt = Annotated[Path | None, typer.Option("--home", help="Data home.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(message: str, code: int = 2) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


class _Registry:
    """The registry with promote/rollback audited in the state store."""

    def __init__(self, home: Path | None) -> None:
        from opsloop.config import load_settings
        from opsloop.home import prepare_home
        from opsloop.learn.mlflow_env import MlflowEnv
        from opsloop.learn.registry import ModelRegistry
        from opsloop.store.state import AuditLog, open_state

        try:
            settings = load_settings(home=home)
            prepare_home(settings.home)
            self.db = open_state(settings.effective_state_url)
        except Exception as exc:
            _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        audit = AuditLog(self.db)

        def record(move: Any) -> None:
            audit.record(
                move.actor, f"model.{move.action}", target=f"{move.model}@{move.alias}",
                note=move.reason, version=move.version, previous=move.previous,
            )  # fmt: skip

        self.registry = ModelRegistry(MlflowEnv(settings.home, settings.mlflow_uri), record)

    def __enter__(self) -> Any:
        return self.registry

    def __exit__(self, *exc: object) -> None:
        self.db.close()


def _when(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


@app.command("list")
def list_cmd(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Registered models, their latest version and aliases."""
    with _Registry(home) as reg:
        models = reg.list_models()
    if as_json:
        typer.echo(json.dumps(models, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "latest", "aliases", "updated")
    for m in models:
        aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(m["aliases"].items()))
        table.add_row(m["name"], m["latest_version"] or "", aliases, _when(m["updated_at_ms"]))
    Console().print(table)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Versions of a model with aliases, metrics and lineage tags."""
    from opsloop.learn.registry import RegistryError

    with _Registry(home) as reg:
        try:
            model = reg.show(name)
        except RegistryError as exc:
            _fail(str(exc), 1)
    if as_json:
        typer.echo(json.dumps(model, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("version", "aliases", "created", "metrics", "run")
    for v in model["versions"]:
        metrics = ", ".join(
            f"{k}={val:.4g}" for k, val in sorted(v["run"].get("metrics", {}).items())
        )
        table.add_row(
            v["version"], ", ".join(v["aliases"]), _when(v["created_at_ms"]), metrics,
            v["run"].get("run_id", "") or "",
        )  # fmt: skip
    Console().print(f"[bold]{model['name']}[/bold] {model['description']}")
    Console().print(table)


@app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version number.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias to move.")] = "champion",
    reason: Annotated[str, typer.Option("--reason", help="Why (audit log).")] = "",
    home: HomeOpt = None,
) -> None:
    """Point an alias (default champion) at a version; audited with who and why."""
    from opsloop.learn.registry import RegistryError

    with _Registry(home) as reg:
        try:
            move = reg.promote(name, version, alias, actor=_actor(), reason=reason)
        except RegistryError as exc:
            _fail(str(exc), 1)
    was = f" (was v{move.previous})" if move.previous else ""
    typer.echo(f"{name}@{alias} → v{move.version}{was}")


@app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias to move back.")] = "champion",
    reason: Annotated[str, typer.Option("--reason", help="Why (audit log).")] = "",
    home: HomeOpt = None,
) -> None:
    """Move an alias back to the version it pointed at before its last promotion."""
    from opsloop.learn.registry import RegistryError

    with _Registry(home) as reg:
        try:
            move = reg.rollback(name, alias, actor=_actor(), reason=reason)
        except RegistryError as exc:
            _fail(str(exc), 1)
    typer.echo(f"{name}@{alias} → v{move.version} (rolled back from v{move.previous})")
