"""``opsloop runbooks``: list, validate, run (or dry-run) runbooks, copy the examples."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Runbooks: list, validate, run, examples.", no_args_is_help=True)
HomeOpt = Annotated[Path | None, typer.Option("--home", help="Data home.", show_default=False)]


def _fail(message: str, code: int = 2) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def _service(home: Path | None):
    from opsloop.config import ConfigError, load_settings
    from opsloop.home import prepare_home
    from opsloop.services.runbooks import RunbookService
    from opsloop.store.state import open_state

    try:
        settings = load_settings(home=home)
        prepare_home(settings.home)
        db = open_state(settings.effective_state_url)
    except (ConfigError, Exception) as exc:  # one line, never a traceback
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return RunbookService(settings, db, recover=False)  # the server owns waiting runs


@app.command("list")
def list_cmd(home: HomeOpt = None) -> None:
    """Runbooks found under <home>/runbooks and runbooks.paths."""
    from rich.console import Console
    from rich.table import Table

    svc = _service(home)
    table = Table("name", "triggers", "steps", "description")
    for rb in svc.runbooks.values():
        kinds = ", ".join(next(iter(t.model_dump(exclude_none=True))) for t in rb.triggers)
        table.add_row(rb.name, kinds, str(len(rb.steps)), rb.description or "")
    Console().print(table)
    for e in svc.errors:
        sys.stderr.write(f"invalid: {e}\n")


@app.command("validate")
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Runbook files or folders.")],
) -> None:
    """Check runbook files; prints file:line:column: what is wrong. Exit 1 if any is invalid."""
    from opsloop.act.runbooks import RunbookValidationError, load_runbook, load_runbooks

    bad = 0
    good = 0
    for p in paths:
        if p.is_dir():
            books, errors = load_runbooks(p)
            good += len(books)
            for e in errors:
                bad += 1
                typer.echo(str(e), err=True)
            continue
        try:
            load_runbook(p)
            good += 1
        except RunbookValidationError as exc:
            bad += 1
            for e in exc.errors:
                typer.echo(str(e), err=True)
        except OSError as exc:
            bad += 1
            typer.echo(f"{p}: {exc.strerror}", err=True)
    typer.echo(f"{good} valid, {bad} invalid")
    if bad:
        raise typer.Exit(1)


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="Runbook name.")],
    param: Annotated[list[str], typer.Option("--param", help="k=v, repeatable.")] = [],  # noqa: B006
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would run.")] = False,
    home: HomeOpt = None,
) -> None:
    """Run a runbook here and now (manual trigger), or show exactly what would run."""
    import getpass

    params = {}
    for item in param:
        k, sep, v = item.partition("=")
        if not sep or not k:
            _fail(f"--param must be k=v, got {item!r}")
        params[k] = v
    svc = _service(home)
    try:
        actor = f"cli:{getpass.getuser()}"
    except Exception:
        actor = "cli"
    try:
        rec = svc.run(name, params, actor, dry_run=dry_run, wait=True)
    except KeyError:
        _fail(f"no runbook {name!r} (see 'opsloop runbooks list')")
    except PermissionError as exc:
        _fail(str(exc))
    for step in rec.steps:
        shown = step.rendered.get("argv") or step.rendered.get("url") or step.rendered
        typer.echo(f"[{step.status.value}] {step.label}: {json.dumps(shown)}")
        if step.stdout and not dry_run:
            typer.echo(step.stdout.rstrip())
    typer.echo(f"run {rec.id}: {rec.status.value}" + (f" ({rec.reason})" if rec.reason else ""))
    if rec.status.value not in ("succeeded",):
        raise typer.Exit(1)


@app.command("examples")
def examples(
    to: Annotated[Path | None, typer.Option("--to", help="Copy them into this folder.")] = None,
) -> None:
    """List the built-in example runbooks, or copy them (e.g. --to .opsloop/runbooks)."""
    import shutil

    from opsloop.act.runbooks import EXAMPLES_DIR

    files = sorted(Path(EXAMPLES_DIR).glob("*.yaml"))
    for f in files:
        if to is None:
            typer.echo(str(f))
            continue
        to.mkdir(parents=True, exist_ok=True)
        target = to / f.name
        if target.exists():
            typer.echo(f"kept existing {target}")
            continue
        shutil.copyfile(f, target)
        typer.echo(f"copied {target}")
