"""Loghub-2k grouping/parsing accuracy: opsloop's TemplateMiner vs drain3 0.9.11, side by side.

Each system's raw ``<S>_2k.log`` is split with its header format from ``formats.json`` by
:mod:`opsloop.observe.logformat`; both miners see the same ``Content`` stream once, in order,
with their default configuration. A line's group is the (resolved) template id its
``learn_one`` / ``add_log_message`` call returned; its template text is that group's final
template. Scores are computed by :mod:`opsloop.detect.templates.scoring`.

usage: python benchmarks/loghub.py --data /work/shared/data/loghub2k [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import sys
import time
from pathlib import Path

from opsloop.detect.templates import TemplateMiner, grouping_accuracy, parsing_accuracy
from opsloop.observe.logformat import LogParser


def load_system(data_dir: Path, system: str, fmt: str) -> tuple[list[str], list[str]]:
    """Contents (parsed from the raw log with ``fmt``) and true templates of one system."""
    parser = LogParser(fmt)
    raw = (data_dir / system / f"{system}_2k.log").read_bytes().split(b"\n")
    contents = [parser.parse(line).content for line in raw if line.strip()]
    with open(data_dir / system / f"{system}_2k.log_structured.csv", newline="") as f:
        truth = [row["EventTemplate"] for row in csv.DictReader(f)]
    if len(contents) != len(truth):
        raise ValueError(f"{system}: {len(contents)} log lines but {len(truth)} truth rows")
    return contents, truth


def run_ours(contents: list[str]) -> tuple[list[int], list[str], int, float]:
    miner = TemplateMiner()
    start = time.perf_counter()
    ids = [miner.learn_one(c).template_id for c in contents]
    elapsed = time.perf_counter() - start
    ids = [miner.resolve(i) for i in ids]
    return ids, [miner.template(i) for i in ids], len(miner), elapsed


def run_drain3(contents: list[str]) -> tuple[list[int], list[str], int, float] | None:
    try:
        from drain3 import TemplateMiner as Drain3Miner
    except ImportError:
        return None
    logging.getLogger("drain3").setLevel(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        miner = Drain3Miner()  # default config; silence its "drain3.ini not found" notice
    start = time.perf_counter()
    ids = [miner.add_log_message(c)["cluster_id"] for c in contents]
    elapsed = time.perf_counter() - start
    templates = {c.cluster_id: c.get_template() for c in miner.drain.clusters}
    return ids, [templates[i] for i in ids], len(templates), elapsed


def run_loghub(data_dir: str | Path) -> dict:
    """Score both miners on every system of ``data_dir``; returns per-system and mean figures."""
    data_dir = Path(data_dir)
    formats = json.loads((data_dir / "formats.json").read_text())
    systems: dict[str, dict] = {}
    for system, fmt in formats.items():
        contents, truth = load_system(data_dir, system, fmt)
        row: dict = {"lines": len(truth), "true_templates": len(set(truth))}
        for name, runner in (("ours", run_ours), ("drain3", run_drain3)):
            result = runner(contents)
            if result is None:
                continue
            ids, templates, found, elapsed = result
            row[name] = {
                "GA": grouping_accuracy(truth, ids),
                "PA": parsing_accuracy(truth, templates),
                "templates": found,
                "seconds": elapsed,
            }
        systems[system] = row
    summary: dict = {"systems": systems}
    for name in ("ours", "drain3"):
        rows = [r[name] for r in systems.values() if name in r]
        if rows:
            summary[name] = {
                "mean_GA": sum(r["GA"] for r in rows) / len(rows),
                "mean_PA": sum(r["PA"] for r in rows) / len(rows),
            }
    return summary


def format_table(result: dict) -> str:
    has_drain = "drain3" in result
    head = "| System | lines | true templates | ours GA | ours PA | ours templates |"
    sep = "|---|---:|---:|---:|---:|---:|"
    if has_drain:
        head += " drain3 GA | drain3 PA | drain3 templates |"
        sep += "---:|---:|---:|"
    out = [head, sep]
    for system, r in result["systems"].items():
        o = r["ours"]
        line = (
            f"| {system} | {r['lines']} | {r['true_templates']} | {o['GA']:.3f} | {o['PA']:.3f} "
            f"| {o['templates']} |"
        )
        if has_drain:
            d = r["drain3"]
            line += f" {d['GA']:.3f} | {d['PA']:.3f} | {d['templates']} |"
        out.append(line)
    o = result["ours"]
    line = f"| **mean** | | | **{o['mean_GA']:.4f}** | **{o['mean_PA']:.4f}** | |"
    if has_drain:
        d = result["drain3"]
        line += f" **{d['mean_GA']:.4f}** | **{d['mean_PA']:.4f}** | |"
    out.append(line)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="directory holding formats.json and <S>/")
    ap.add_argument("--json", help="also write the full result as JSON here")
    args = ap.parse_args(argv)
    result = run_loghub(args.data)
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
