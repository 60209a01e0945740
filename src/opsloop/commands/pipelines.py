"""``opsloop pipelines``: list, show, run pipelines (built-in, in the home, or a YAML file)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Data and training pipelines: list, show, run, runs.", no_args_is_help=True)
HomeOpt = Annotated[Path | None, typer.Option("--home", help="Data home.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(message: str, code: int = 2) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def _service(home: Path | None) -> Any:
    from opsloop.config import load_settings
    from opsloop.home import prepare_home
    from opsloop.services.pipelines import PipelineService
    from opsloop.store.state import open_state

    try:
        settings = load_settings(home=home)
        prepare_home(settings.home)
        db = open_state(settings.effective_state_url)
    except Exception as exc:  # one line, never a traceback
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return PipelineService(settings, db)


@app.command("list")
def list_cmd(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Built-in pipelines and the YAML pipelines in <home>/pipelines and pipelines.paths."""
    svc = _service(home)
    rows = [
        {"name": n, "source": e.source, "description": e.description, "error": e.error}
        for n, e in svc.catalog().items()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "source", "description")
    for r in rows:
        table.add_row(r["name"], r["source"], r["error"] or r["description"])
    Console().print(table)


def _params(values: list[str]) -> dict[str, dict[str, Any]]:
    """``step.param=value`` pairs (value parsed as JSON when it can be)."""
    out: dict[str, dict[str, Any]] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        step, dot, param = key.partition(".")
        if not sep or not dot or not step or not param:
            _fail(f"--param {item!r}: use STEP.PARAM=VALUE")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(step, {})[param] = value
    return out


def _print_run(record: Any, elapsed: float) -> None:
    for name, step in record.steps.items():
        took = ""
        if step.started_at and step.finished_at:
            took = f" {(step.finished_at - step.started_at).total_seconds():.2f}s"
        origin = f" (from run {step.reused_from[:8]})" if step.reused_from else ""
        tries = f" after {len(step.attempts)} attempts" if len(step.attempts) > 1 else ""
        line = f"  {step.status.value:<16} {name}{took}{tries}{origin}"
        typer.echo(line)
        if step.error:
            typer.echo(f"      {step.error}")
    cached = sum(1 for s in record.steps.values() if s.status.value in ("cached", "resumed"))
    mlflow = f", MLflow run {record.tracker_run_id}" if record.tracker_run_id else ""
    typer.echo(
        f"run {record.id}: {record.status.value} in {elapsed:.2f}s, "
        f"{cached}/{len(record.steps)} steps reused{mlflow}"
    )


@app.command("run")
def run(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name, or a path to a YAML file.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="STEP.PARAM=VALUE (repeatable).")
    ] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Run id to resume.")] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a pipeline here and now (tracked in MLflow, recorded in the state store)."""
    from opsloop.learn.pipelines import PipelineError, ResumeError, SpecError, load_pipeline
    from opsloop.services.pipelines import PipelineNotFound

    svc = _service(home)
    params = _params(param or [])
    started = time.perf_counter()
    try:
        path = Path(pipeline)
        if pipeline.endswith((".yaml", ".yml")) or path.is_file():
            if not path.is_file():
                _fail(f"{pipeline}: no such file")
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))  # `uses:` modules import as with python -m
            pipe = load_pipeline(path)
            svc.env.ensure()
            record = svc.runner.run(pipe, params=params, resume_from=resume, trigger=f"cli:{path}")
        else:
            record = svc.run(pipeline, params, trigger="cli", resume_from=resume)
    except PipelineNotFound:
        _fail(f"no pipeline {pipeline!r} (see `opsloop pipelines list`)")
    except (SpecError, PipelineError, ResumeError, ValueError) as exc:
        _fail(str(exc))
    finally:
        svc.close()
    elapsed = time.perf_counter() - started
    if as_json:
        from opsloop.services.pipeline_runs import run_summary

        typer.echo(json.dumps({**run_summary(record), "elapsed_s": elapsed}, indent=2))
    else:
        _print_run(record, elapsed)
    if record.status.value != "succeeded":
        raise typer.Exit(1)


@app.command("runs")
def runs(
    pipeline: Annotated[str | None, typer.Argument(help="Only this pipeline.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many.")] = 20,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recent runs, newest first."""
    from opsloop.services.pipeline_runs import run_summary

    svc = _service(home)
    rows = [run_summary(r) for r in svc.runs.recent(pipeline, limit=limit)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "pipeline", "status", "trigger", "started", "seconds", "reused")
    for r in rows:
        secs = f"{r['duration_s']:.2f}" if r["duration_s"] is not None else ""
        table.add_row(
            r["id"][:12], r["pipeline"], r["status"], r["trigger"], (r["started_at"] or "")[:19],
            secs, str(len(r["cached_steps"])),
        )  # fmt: skip
    Console().print(table)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    home: HomeOpt = None,
) -> None:
    """A pipeline's DAG (steps, inputs, outputs, params) and schedules, as JSON."""
    from opsloop.services.pipelines import PipelineNotFound

    svc = _service(home)
    try:
        typer.echo(json.dumps(svc.describe(name), indent=2, default=str))
    except PipelineNotFound:
        _fail(f"no pipeline {name!r}")
