"""``opsloop bench``: the field's benchmarks on data you point at."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Benchmarks: Loghub parsing accuracy, HDFS sessions.", no_args_is_help=True)


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(2)


@app.command("loghub")
def loghub(
    data: Annotated[Path, typer.Option("--data", help="A folder laid out like Loghub-2k.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Grouping accuracy (GA) and parsing accuracy (PA) per system and their mean."""
    from opsloop.services.bench_logs import BenchError, run_loghub

    try:
        result = run_loghub(data)
    except BenchError as exc:
        _fail(str(exc))
    if as_json:
        import json

        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table("system", "GA", "PA", "templates", "true", "lines/s")
    for r in result["systems"]:
        rate = r["lines"] / r["seconds"] if r["seconds"] else 0
        t.add_row(
            r["system"], f"{r['ga']:.3f}", f"{r['pa']:.3f}", str(r["templates"]),
            str(r["true_templates"]), f"{rate:,.0f}",
        )  # fmt: skip
    t.add_row("[bold]mean", f"[bold]{result['mean_ga']:.3f}", f"[bold]{result['mean_pa']:.3f}")
    Console().print(t)


@app.command("hdfs")
def hdfs(
    train: Annotated[Path, typer.Option("--train", help="Sessions CSV to learn from.")],
    test: Annotated[Path, typer.Option("--test", help="Sessions CSV to score.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write BlockId,Score,Predicted.")],
) -> None:
    """Learn from --train without its labels, score every --test session, write predictions."""
    from opsloop.services.bench_logs import BenchError, run_hdfs

    try:
        s = run_hdfs(train, test, out)
    except BenchError as exc:
        _fail(str(exc))
    typer.echo(
        f"train sessions: {s['train_sessions']}  test sessions: {s['test_sessions']}  "
        f"predicted anomalous: {s['predicted_anomalous']}  -> {out}"
    )
    if "f1" in s:
        typer.echo(f"precision={s['precision']:.4f} recall={s['recall']:.4f} f1={s['f1']:.4f}")
