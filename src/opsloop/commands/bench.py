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


@app.command("nab")
def nab(
    data: Annotated[
        Path, typer.Option("--data", help="A folder laid out like NAB (data/, labels/).")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Results folder to write (detects).")
    ] = None,
    score: Annotated[
        Path | None, typer.Option("--score", help="Score this existing results folder instead.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
) -> None:
    """Run the default metric detector causally over a NAB corpus and score it (NAB v1.1)."""
    import json

    from opsloop.services.bench_nab import NabError, run_nab, score_results

    if (out is None) == (score is None):
        _fail("give exactly one of --out RESULTS_DIR (detect) or --score RESULTS_DIR")
    try:
        if score is not None:
            scored = score_results(data, score)
            for det, s in scored.items():
                typer.echo(f"{det}: " + "  ".join(f"{k} {v:.2f}" for k, v in s.items()))
            if as_json:
                only = next(iter(scored.values())) if len(scored) == 1 else scored
                typer.echo(json.dumps(only))
            return
        assert out is not None
        s = run_nab(data, out)
    except NabError as exc:
        _fail(str(exc))
    typer.echo(
        f"files {s['files']}  points {s['points']:,}  {s['points_per_second']:,.0f} points/s  "
        f"peak RSS {s['peak_rss_bytes'] / 2**20:.0f} MiB  "
        f"(compiled loop loaded in {s['jit_load_seconds']:.2f} s, untimed)  -> {out}"
    )
    scores = s.get("scores")
    if scores:
        typer.echo("  ".join(f"{k} {v:.2f}" for k, v in scores.items()))
    if as_json:
        typer.echo(json.dumps({**(scores or {}), "points_per_second": s["points_per_second"]}))
