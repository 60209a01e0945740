"""The demo scenario end to end: detection delay, correlation, actions and false alarms.

    .venv/bin/python benchmarks/demo_scenario.py [--scenario demo] [--out FILE.md]

Starts `opsloop up --demo` in a temporary home (a real server: the simulator reaches it only
over HTTP and syslog), waits until the scenario has played (the simulator writes its ground
truth at the end), lets the pipelines and runbooks settle, then reads the anomalies, incidents
and runbook runs over the API and scores them against the ground truth with
`opsloop.simulate.evaluate`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from opsloop.simulate.harness import run_demo


def to_markdown(result: dict, command: str) -> str:
    lines = [
        f"# Demo scenario `{result['scenario']}`: detection, correlation, action, false alarms",
        "",
        f"Command: `{command}`",
        "",
        f"A real `opsloop up --demo` (2-core box, shared): the scenario played in "
        f"{result['wall_s']} s wall time; {result['anomalies_total']} anomaly records, "
        f"{result['incidents_total']} incidents.",
        "",
        "| fault | target | detected | time to detect (simulated) | first detector | incident "
        "(correlated) | acted on by |",
        "|---|---|---|---:|---|---|---|",
    ]
    for f in result["faults"]:
        ttd = f"{f['time_to_detect_s'] / 60:.1f} min" if f["time_to_detect_s"] is not None else "—"
        inc = f"{f['incident'] or '—'} ({'yes' if f['correlated'] else 'no'})"
        lines.append(
            f"| {f['kind']} | {f['target']} | {'yes' if f['detected'] else '**no**'} | {ttd} | "
            f"{f['detector'] or '—'} | {inc} | {', '.join(f['acted_by']) or '—'} |"
        )
    lines += [
        "",
        f"**{result['detected']}/{result['total']} faults detected, {result['correlated']} "
        f"correlated into an incident about the right host/model, {result['acted_on']} acted on; "
        f"median time to detect {result['median_time_to_detect_s']} s (simulated); "
        f"{result['false_alarms']} false alarms** (anomalies of severity ≥ warning after a "
        f"5-minute warm-up, outside every fault's window on their host).",
        "",
        "False alarms by detector:",
        "",
    ]
    by: dict[str, int] = {}
    for a in result["false_alarm_list"]:
        key = f"{a['detector']} on {a['host'] or a['model']}"
        by[key] = by.get(key, 0) + 1
    for key, n in sorted(by.items(), key=lambda kv: -kv[1]):
        lines.append(f"- {key}: {n}")
    if result["false_alarm_list"]:
        lines += ["", "Each false alarm's first line of evidence:", ""]
        for a in sorted(result["false_alarm_list"], key=lambda a: float(a["time"])):
            lines.append(f"- {a['detector']} on {a['host'] or a['model']}: {a['evidence']}")
    lines += ["", f"Churn model versions after the run: {result['churn_versions']}", ""]
    loop = result.get("loop")
    if loop:
        lines += [
            "**Closing the loop** (the harness plays the operator): incidents holding a fault's "
            f"detection marked true problem ({loop['marked']['true_problem']}), the others noise "
            f"({loop['marked']['noise']}); the built-in `detector-metric-settings` pipeline then "
            f"ran on those verdicts: {loop['pipeline_status']}"
            + (f" ({loop['pipeline_error']})" if loop.get("pipeline_error") else "")
            + f"; `opsloop-metric-settings` versions (alias): {loop['versions']}; the running "
            f"metric engine uses version {loop['live_version']} (no restart).",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenario", default="demo")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opsloop-demo-"))
    try:
        result = run_demo(work, args.scenario, close_loop=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    command = "python benchmarks/demo_scenario.py " + " ".join(sys.argv[1:])
    text = to_markdown(result, command.strip())
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
