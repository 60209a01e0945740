"""``opsloop simulate``: feed a running opsloop from a simulated estate, with faults."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from opsloop.simulate.scenario import Scenario

app = typer.Typer(
    help="Simulate an estate (web, database, batch job, a served model) that feeds opsloop "
    "logs, metrics and predictions, and inject faults. Without a sub-command: run a scenario.",
    invoke_without_command=True,
)


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(2)


def _speed(text: str | None) -> float | None:
    if text is None:
        return None
    if text.strip().lower() in ("max", "inf"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 and math.isfinite(value)):
        _fail(f"--speed must be a number > 0 or 'max', got {text!r}")
    return value


def _duration(text: str | None, option: str) -> float | None:
    from opsloop.timeparse import parse_duration

    if text is None:
        return None
    if text.strip().lower() == "forever":
        return math.inf
    try:
        value = parse_duration(text)
    except ValueError as exc:
        _fail(f"{option}: {exc}")
    if value <= 0 and option != "--inject-at":
        _fail(f"{option} must be > 0")
    return value


def _token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            _fail(f"cannot read the token file {token_file}: {exc.strerror or exc}")
        if not token:
            _fail(f"the token file {token_file} is empty")
        return token
    token = os.environ.get("OPSLOOP_TOKEN", "").strip()
    if token:
        return token
    from opsloop.home import ADMIN_TOKEN_FILE

    default = Path(os.environ.get("OPSLOOP_HOME") or ".opsloop") / ADMIN_TOKEN_FILE
    if default.is_file():
        return default.read_text(encoding="utf-8").strip()
    _fail("no API token: pass --token-file, set OPSLOOP_TOKEN, or run where the opsloop home is "
          "(create one with `opsloop token create --role operator`)")  # fmt: skip
    return ""


def _load(scenario: str) -> Scenario:
    from opsloop.simulate.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(scenario)
    except ScenarioError as exc:
        _fail(str(exc))
        raise


def _progress(sim: Any, quiet: bool) -> Any:
    import time

    state = {"last": 0.0}

    def on_tick(_out: object) -> None:
        now = time.monotonic()
        if quiet or now - state["last"] < 2.0:
            return
        state["last"] = now
        r = sim.report()
        active = ",".join(
            f"{e['kind']}@{e['target']}" for e in sim.ground_truth["faults"]
            if e["status"] == "active"
        ) or "none"  # fmt: skip
        typer.echo(f"{r['sim_now_iso'][:19]}Z  +{r['sim_elapsed_s'] / 60:5.1f} min  "
                   f"lines {r['log_lines']}  samples {r['samples']}  "
                   f"predictions {r['predictions']}  faults active: {active}")  # fmt: skip

    return on_tick


@app.callback()
def run(
    ctx: typer.Context,
    scenario: Annotated[
        str, typer.Option("--scenario", "-s", help="Built-in 'demo' or 'quick', or a YAML file.")
    ] = "demo",
    url: Annotated[str, typer.Option("--url", help="Base URL of opsloop.")] = (
        "http://127.0.0.1:8700"
    ),
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="File holding an API token (else env OPSLOOP_TOKEN, else <home>/admin.token).",
        ),
    ] = None,
    speed: Annotated[
        str | None,
        typer.Option(
            "--speed", help="Simulated seconds per real second, or 'max' (default: the scenario's)."
        ),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            help="Simulated time to run, e.g. 2h, or 'forever' "
            "(default: the scenario's). Past the planned span it runs at real time.",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Override the scenario's seed.")
    ] = None,
    syslog_port: Annotated[
        int | None,
        typer.Option(
            "--syslog-port",
            help="opsloop's syslog port (logs.syslog_udp_port or "
            "_tcp_port); without it every log goes over HTTP.",
        ),
    ] = None,
    syslog_proto: Annotated[str, typer.Option("--syslog-proto", help="udp or tcp.")] = "udp",
    syslog_host: Annotated[
        str | None, typer.Option("--syslog-host", help="Syslog host (default: the URL's host).")
    ] = None,
    exposition_port: Annotated[
        int | None,
        typer.Option(
            "--exposition-port",
            help="Serve the metrics at http://127.0.0.1:PORT/metrics (0: any free port).",
        ),
    ] = None,
    metrics: Annotated[
        str,
        typer.Option(
            "--metrics",
            help="push (POST /api/v1/metrics), scrape (opsloop scrapes "
            "the exposition page; speed 1 only) or auto (scrape at speed 1 with an "
            "exposition port, else push).",
        ),
    ] = "auto",
    inject: Annotated[
        str | None, typer.Option("--inject", help="Also inject a fault of this kind.")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Host (or model) for --inject.")
    ] = None,
    inject_at: Annotated[
        str | None, typer.Option("--inject-at", help="Offset of the injected fault (default 0).")
    ] = None,
    inject_duration: Annotated[
        str | None, typer.Option("--inject-duration", help="Its duration (default per kind).")
    ] = None,
    intensity: Annotated[float, typer.Option("--intensity", help="Its intensity, (0, 5].")] = 1.0,
    ground_truth: Annotated[
        Path, typer.Option("--ground-truth", help="Where to write the ground truth JSON.")
    ] = Path("ground_truth.json"),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Generate without sending; print a summary.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Run a scenario against a running opsloop (the default when no sub-command is given)."""
    if ctx.invoked_subcommand is not None:
        return
    import json

    from opsloop.simulate.runner import METRIC_MODES, Simulator

    sc = _load(scenario)
    if metrics not in METRIC_MODES:
        _fail(f"--metrics must be one of {', '.join(METRIC_MODES)}")
    if syslog_proto not in ("udp", "tcp"):
        _fail("--syslog-proto must be udp or tcp")
    run_speed = _speed(speed)
    until = _duration(duration, "--duration")
    at = _duration(inject_at, "--inject-at") if inject_at else None
    length = _duration(inject_duration, "--inject-duration")
    if inject and until is None:  # run long enough for the injected fault to end
        from opsloop.simulate.faults import FAULT_KINDS

        fk = FAULT_KINDS.get(inject)
        if fk is not None:
            until = max(sc.duration_s, (at or 0.0) + (length or fk.default_duration_s))
    token = None if dry_run else _token(token_file)
    try:
        sim = Simulator(
            sc, None if dry_run else url, token, speed=run_speed, span_s=until, seed=seed,
            syslog_port=syslog_port, syslog_host=syslog_host, syslog_proto=syslog_proto,
            exposition_port=exposition_port, metrics=metrics, ground_truth_path=ground_truth,
            on_problem=lambda m: sys.stderr.write(f"warning: {m}\n"),
        )  # fmt: skip
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    if sim.transport is not None:
        problem = sim.transport.preflight()
        if problem:
            sim.close()
            _fail(problem)
    try:
        if inject:
            try:
                entry = sim.inject(inject, target, duration_s=length, intensity=intensity,
                                   at_s=at)  # fmt: skip
            except ValueError as exc:
                _fail(str(exc))
            if not quiet:
                typer.echo(
                    f"injecting {entry['kind']} on {entry['target']} at "
                    f"+{entry['offset_s']:.0f}s for {entry['duration_s']:.0f}s"
                )
        if not quiet:
            mode = "dry run" if dry_run else f"-> {url}"
            speed_text = "max" if math.isinf(sim.speed) else f"{sim.speed:g}x"
            typer.echo(f"scenario {sc.name} ({len(sc.faults)} faults) {mode}  speed {speed_text}  "
                       f"metrics: {sim.metrics_mode}  starts at "
                       f"{sim.ground_truth['sim_start_iso'][:19]}Z")  # fmt: skip
            if sim.exposition is not None:
                typer.echo(f"metrics page: {sim.exposition.url}")
        try:
            report = sim.run(until=until, on_tick=_progress(sim, quiet))
        except KeyboardInterrupt:
            report = sim.report()
            typer.echo("interrupted")
    finally:
        sim.close()
    typer.echo(json.dumps(report, indent=2))
    typer.echo(f"ground truth: {ground_truth}")


@app.command("faults")
def faults() -> None:
    """List the fault kinds, their targets and default durations."""
    from opsloop.simulate.faults import FAULT_KINDS

    for fk in FAULT_KINDS.values():
        typer.echo(
            f"{fk.name:<20} targets: {', '.join(fk.targets):<18} "
            f"default: {fk.default_target}, {fk.default_duration_s / 60:g} min"
        )
        typer.echo(f"{'':<20} {fk.description}")


@app.command("validate")
def validate(
    file: Annotated[str, typer.Argument(help="A scenario YAML file (or 'demo', 'quick').")],
) -> None:
    """Check a scenario file; print a summary or the first problem with its line."""
    sc = _load(file)
    speed = "max" if math.isinf(sc.speed) else f"{sc.speed:g}"
    typer.echo(f"{sc.origin}: ok: {sc.name}, {sc.duration_s / 60:g} simulated min, "
               f"tick {sc.tick_s:g}s, speed {speed}, {len(sc.faults)} faults")  # fmt: skip
    for f in sc.faults:
        typer.echo(
            f"  +{f.start_s / 60:5.1f} min  {f.kind:<20} {f.target:<8} "
            f"{f.duration_s / 60:g} min  intensity {f.intensity:g}"
        )
