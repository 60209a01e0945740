"""Throughput, memory and accuracy at scale: opsloop's TemplateMiner vs drain3 0.9.11.

Generates one corpus (default 300,000 lines of Content only, with per-line truth) with
``/work/shared/tools/make_log_corpus.py`` into a temporary directory, then runs each miner in its
own fresh subprocess (same Python, one process each, default configurations) over the same
lines, already in memory. Reported per miner: lines/s over the whole stream and per 50k-line
slice (is speed flat as the stream grows?), the peak memory the miner allocates while mining
(``tracemalloc`` peak minus the baseline, in a second, untimed pass with a fresh miner; measured
the same way for both), templates found vs true templates, and GA at scale against the
``--with-truth`` file (truth group = system + template).

usage: python benchmarks/log_throughput.py [--lines 300000] [--seed 7]
       [--loghub /work/shared/data/loghub2k] [--tool /work/shared/tools/make_log_corpus.py]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

SLICE = 50_000


def worker(miner_name: str, corpus: str, truth_csv: str, memory: bool = True) -> dict:
    """Run one miner over the corpus in this (fresh) process and return its figures."""
    from opsloop.detect.templates import grouping_accuracy

    with open(corpus, encoding="utf-8") as f:
        lines = f.read().splitlines()

    def make() -> tuple[object, object]:
        if miner_name == "ours":
            from opsloop.detect.templates import TemplateMiner

            ours = TemplateMiner()
            learn = ours.learn_one
            return ours, lambda line: learn(line).template_id
        from drain3 import TemplateMiner as Drain3Miner

        logging.getLogger("drain3").setLevel(logging.WARNING)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            drain = Drain3Miner()  # default configuration
        add = drain.add_log_message
        return drain, lambda line: add(line)["cluster_id"]

    # pass 1: speed (no tracing)
    miner, step = make()
    ids: list[int] = [0] * len(lines)
    slices: list[float] = []
    start = last = time.perf_counter()
    for i, line in enumerate(lines):
        ids[i] = step(line)
        if (i + 1) % SLICE == 0:
            now = time.perf_counter()
            slices.append(SLICE / (now - last))
            last = now
    elapsed = time.perf_counter() - start
    if miner_name == "ours":
        ids = [miner.resolve(i) for i in ids]
        found = len(miner)
    else:
        found = len(miner.drain.clusters)
    del miner, step
    # pass 2: memory, a fresh miner over the same lines under tracemalloc (slower, not timed)
    traced_peak = state_size = None
    if memory:
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        miner, step = make()
        for line in lines:
            step(line)
        traced_peak = (tracemalloc.get_traced_memory()[1] - base) / 2**20
        tracemalloc.stop()
        if miner_name == "ours":
            state_size = len(json.dumps(miner.to_dict())) / 2**20
    with open(truth_csv, newline="") as f:
        truth = [r["System"] + "\x00" + r["EventTemplate"] for r in csv.DictReader(f)]
    return {
        "miner": miner_name,
        "lines": len(lines),
        "seconds": elapsed,
        "lines_per_s": len(lines) / elapsed,
        "slice_lines_per_s": slices,
        "traced_peak_mib": traced_peak,
        "state_json_mib": state_size,
        "templates_found": found,
        "true_templates": len(set(truth)),
        "GA": grouping_accuracy(truth, ids),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=300_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--loghub", default="/work/shared/data/loghub2k")
    ap.add_argument("--tool", default="/work/shared/tools/make_log_corpus.py")
    ap.add_argument("--miners", default="ours,drain3")
    ap.add_argument("--json", help="also write the results as JSON here")
    ap.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        name, corpus, truth, memory = args.worker
        print(json.dumps(worker(name, corpus, truth, memory == "1")))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        corpus, truth = str(Path(tmp) / "corpus.log"), str(Path(tmp) / "truth.csv")
        subprocess.run(
            [sys.executable, args.tool, "--loghub", args.loghub, "--lines", str(args.lines),
             "--out", corpus, "--seed", str(args.seed), "--with-truth", truth],
            check=True,
        )  # fmt: skip
        results = []
        for name in args.miners.split(","):
            out = subprocess.run(
                [sys.executable, __file__, "--worker", name, corpus, truth,
                 "0" if args.no_memory else "1"],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"corpus: {args.lines} lines, seed {args.seed}, from {args.loghub}")
    print("| miner | lines/s | lines/s per 50k slice (first → last) | traced peak MiB "
          "| templates found | true templates | GA at scale |")  # fmt: skip
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in results:
        sl = " → ".join(f"{s / 1000:.0f}k" for s in r["slice_lines_per_s"])
        print(
            f"| {r['miner']} | {r['lines_per_s']:,.0f} | {sl} | {r['traced_peak_mib'] or 0:.1f} "
            f"| {r['templates_found']} | {r['true_templates']} | {r['GA']:.4f} |"
        )
    for r in results:
        if r["state_json_mib"] is not None:
            print(f"\n{r['miner']}: to_dict() state as JSON = {r['state_json_mib']:.2f} MiB")
    if len(results) == 2:
        ratio = results[0]["lines_per_s"] / results[1]["lines_per_s"]
        print(f"\nspeed-up ours / drain3: {ratio:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
