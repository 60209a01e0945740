"""``opsloop logs``: parse and analyze log files or stdin, streaming."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from opsloop.services.log_report import LogReport

app = typer.Typer(help="Parse and analyze logs (files or '-' for stdin).", no_args_is_help=True)

FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help="Header format: auto, raw, a built-in name, or LogPAI notation like "
        "'<Date> <Time> <Level>: <Content>'.",
    ),
]


def _open(path: str) -> tuple[BinaryIO, int | None]:
    if path == "-":
        return sys.stdin.buffer, None
    p = Path(path)
    try:
        return p.open("rb"), p.stat().st_size
    except OSError as exc:
        sys.stderr.write(f"error: cannot read {path}: {exc.strerror}\n")
        raise typer.Exit(2) from None


def _lines(
    stream: BinaryIO, progress: object | None = None, task: object = None
) -> Iterator[bytes]:
    for raw in stream:
        if progress is not None:
            progress.advance(task, len(raw))
        yield raw


@app.command("parse")
def parse(
    file: Annotated[str, typer.Argument(help="Log file, or - for stdin.")],
    fmt: FormatOpt = "auto",
    output: Annotated[str, typer.Option("--output", help="jsonl, csv or none.")] = "jsonl",
) -> None:
    """One object per input line: line, template_id, template (<*> = variable), params."""
    import csv
    import json

    from opsloop.services.log_report import parse_stream

    if output not in ("jsonl", "csv", "none"):
        sys.stderr.write("error: --output must be jsonl, csv or none\n")
        raise typer.Exit(2)
    stream, _ = _open(file)
    out = sys.stdout
    writer = csv.writer(out) if output == "csv" else None
    if writer is not None:
        writer.writerow(["line", "template_id", "template", "params"])
    started = time.perf_counter()
    n = 0
    from opsloop.detect.templates import TemplateMiner

    miner = TemplateMiner()
    try:
        for n, match, _fields in parse_stream(stream, fmt, miner):
            if output == "jsonl":
                out.write(
                    json.dumps(
                        {"line": n, "template_id": match.template_id,
                         "template": match.template, "params": match.params},
                        ensure_ascii=False,
                    ) + "\n"
                )  # fmt: skip
            elif writer is not None:
                writer.writerow([n, match.template_id, match.template, json.dumps(match.params)])
    except BrokenPipeError:
        sys.stderr.close()
        raise typer.Exit(0) from None
    except ValueError as exc:  # a bad --format
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(2) from None
    elapsed = time.perf_counter() - started
    if output == "none":
        rate = n / elapsed if elapsed > 0 else float("inf")
        typer.echo(
            f"lines: {n}  templates: {len(miner)}  seconds: {elapsed:.2f}  lines/s: {rate:,.0f}"
        )


@app.command("analyze")
def analyze(
    file: Annotated[str, typer.Argument(help="Log file, or - for stdin.")],
    fmt: FormatOpt = "auto",
    session_key: Annotated[
        str | None,
        typer.Option("--session-key", help=r"Regex of a session id, e.g. 'blk_-?\d+'."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    top: Annotated[int, typer.Option("--top", help="Rows per section.")] = 20,
) -> None:
    """A report: templates with counts, new/rare ones, bursts, anomalous sessions."""
    import re

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TransferSpeedColumn

    from opsloop.services.log_report import LogAnalyzer

    if session_key:
        try:
            re.compile(session_key)
        except re.error as exc:
            sys.stderr.write(f"error: --session-key is not a valid regex: {exc}\n")
            raise typer.Exit(2) from None
    try:
        analyzer = LogAnalyzer(fmt, session_key)
    except (ValueError, re.error) as exc:
        sys.stderr.write(f"error: --format: {exc}\n")
        raise typer.Exit(2) from None
    stream, size = _open(file)
    err = Console(stderr=True)
    show = err.is_terminal or (size is not None and size > 20_000_000)
    with Progress(
        TextColumn("[bold]analyzing"), BarColumn(), TransferSpeedColumn(),
        console=err, disable=not show, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("read", total=size)
        analyzer.feed(_lines(stream, progress, task))
    report = analyzer.report(top=top)
    if as_json:
        import json

        typer.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        return
    _print_report(report, Console())


def _print_report(r: LogReport, c: Console) -> None:
    from datetime import UTC, datetime

    from rich.table import Table

    def when(t: float) -> str:
        if r.time_base == "line":
            return f"line {int(t)}"
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")

    c.print(
        f"[bold]{r.lines:,}[/] lines, [bold]{r.parsed_lines:,}[/] parsed, "
        f"[bold]{len(r.templates)}[/]+ templates in {r.seconds:.2f} s; time base: {r.time_base}"
    )
    t = Table(title="Templates (most frequent)", title_justify="left")
    for col in ("id", "count", "share", "template"):
        t.add_column(col, justify="right" if col in ("id", "count", "share") else "left")
    total = max(r.parsed_lines, 1)
    for row in r.templates:
        t.add_row(str(row.id), f"{row.count:,}", f"{row.count / total:.1%}", row.template)
    c.print(t)
    if r.rare:
        t = Table(title="New and rare templates", title_justify="left")
        for col in ("id", "count", "first line", "example"):
            t.add_column(col)
        for row in r.rare:
            t.add_row(str(row.id), str(row.count), str(row.first_line), row.example)
        c.print(t)
    if r.bursts:
        t = Table(title="Bursts and silences", title_justify="left")
        for col in ("when", "kind", "score", "template"):
            t.add_column(col)
        for b in r.bursts:
            t.add_row(when(b["time"]), b["kind"], str(b["score"]), b["template"])
        c.print(t)
    if r.sessions_total:
        t = Table(
            title=f"Anomalous sessions ({len(r.anomalous_sessions)} shown of "
            f"{r.sessions_total:,} sessions)",
            title_justify="left",
        )
        for col in ("session", "score", "events", "evidence"):
            t.add_column(col)
        for s in r.anomalous_sessions:
            t.add_row(s["key"], str(s["score"]), str(s["events"]), "\n".join(s["evidence"]))
        c.print(t)
