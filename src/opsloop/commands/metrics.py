"""``opsloop metrics``: forecast a series from a CSV, import samples."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Metric series: forecasts and imports.", no_args_is_help=True)


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(2)


@app.command("forecast")
def forecast(
    file: Annotated[Path, typer.Argument(help="CSV with timestamp,value (epoch s or ISO-8601).")],
    threshold: Annotated[
        float, typer.Option("--threshold", help="The value that means exhausted.")
    ],
    horizon: Annotated[str, typer.Option("--horizon", help="How far ahead to look.")] = "7d",
    falling: Annotated[
        bool,
        typer.Option(
            "--falling", help="Exhausted when the value falls to --threshold (days left, free)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """When the series crosses --threshold (eta, eta_low, eta_high), or null within the horizon."""
    import json
    import math

    from opsloop.services.metric_csv import CsvError, read_series_csv
    from opsloop.services.metric_ingest import build_forecaster
    from opsloop.timeparse import parse_duration

    try:
        horizon_s = parse_duration(horizon)
        points = read_series_csv(file)
    except (CsvError, ValueError) as exc:
        _fail(str(exc))
    if len(points) < 3:
        _fail(f"{file}: need at least 3 points")
    if not math.isfinite(threshold):
        _fail("--threshold must be finite")
    f = build_forecaster(points, falling)
    now = points[-1][0]
    out: dict[str, object] = {"now": now, "last_value": points[-1][1], "threshold": threshold,
                              "horizon_s": horizon_s, "eta": None, "eta_low": None,
                              "eta_high": None}  # fmt: skip
    last = points[-1][1]
    if (last <= threshold) if falling else (last >= threshold):
        out.update(eta=now, eta_low=now, eta_high=now)
    else:
        eta = f.time_to_threshold(threshold, now=now)
        if math.isfinite(eta.seconds) and eta.seconds <= horizon_s:
            out.update(
                eta=now + eta.seconds,
                eta_low=now + eta.low,
                eta_high=now + eta.high if math.isfinite(eta.high) else None,
                eta_source=eta.source,
            )
    if as_json:
        typer.echo(json.dumps(out))
        return
    if out["eta"] is None:
        typer.echo(f"no crossing of {threshold:g} within {horizon}")
        return
    from datetime import UTC, datetime

    def fmt(t: object) -> str:
        return "—" if t is None else datetime.fromtimestamp(float(t), UTC).isoformat()  # type: ignore[arg-type]

    typer.echo(
        f"crosses {threshold:g} at {fmt(out['eta'])} "
        f"(between {fmt(out['eta_low'])} and {fmt(out['eta_high'])})"
    )


@app.command("import")
def import_csv(
    file: Annotated[
        Path, typer.Argument(help="CSV: timestamp,value or timestamp,name,labels,value.")
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Metric name for timestamp,value files.")
    ] = None,
    label: Annotated[list[str], typer.Option("--label", help="key=value, repeatable.")] = [],  # noqa: B006
    home: Annotated[Path | None, typer.Option("--home", help="Data home.")] = None,
) -> None:
    """Import samples into the telemetry store (stop the server first: DuckDB has one writer)."""
    from opsloop.config import ConfigError, load_settings
    from opsloop.platform import Platform
    from opsloop.services.metric_csv import CsvError, read_samples_csv

    labels = {}
    for item in label:
        k, sep, v = item.partition("=")
        if not sep or not k:
            _fail(f"--label must be key=value, got {item!r}")
        labels[k] = v
    try:
        samples = read_samples_csv(file, name, labels)
    except CsvError as exc:
        _fail(str(exc))
    try:
        settings = load_settings(home=home)
        platform = Platform.open(settings)
    except ConfigError as exc:
        _fail(str(exc))
    except Exception as exc:  # the store is locked by a running server, unwritable home…
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _fail(f"{first} (is 'opsloop up' running? stop it, or POST to /api/v1/metrics)")
    try:
        from opsloop.services.metric_ingest import COLD_BATCH_MIN

        if len(samples) >= COLD_BATCH_MIN:  # worth loading the detector's compiled loop
            from opsloop.detect.metrics import steady

            steady.warm()
        total, rejected, anomalies = 0, 0, 0
        for i in range(0, len(samples), 10_000):
            r = platform.metrics.ingest(samples[i : i + 10_000])
            total += r.accepted
            rejected += len(r.rejected)
            anomalies += len(r.anomalies)
            for rej in r.rejected[:5]:
                sys.stderr.write(f"rejected {rej.sample_repr}: {rej.reason}\n")
    finally:
        platform.close()
    typer.echo(f"imported {total} samples, rejected {rejected}, anomalies {anomalies}")
