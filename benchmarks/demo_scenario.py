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
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from opsloop.simulate.evaluate import collect, evaluate_run


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scenario_done(truth: Path) -> bool:
    """The ground truth says every fault of the scenario has ended."""
    try:
        data = json.loads(truth.read_text())
    except (OSError, ValueError):
        return False
    faults = data.get("faults", [])
    return (
        bool(faults)
        and all(f.get("end") is not None and f.get("status") == "done" for f in faults)
        and len(faults) == len(data["scenario"]["faults"])
    )


def run_demo(
    workdir: Path, scenario: str = "demo", settle_s: float = 15.0, timeout_s: float = 600.0
) -> dict:
    """Run ``opsloop up --demo`` until its scenario ended; return the evaluation."""
    home = workdir / "home"
    port = free_port()
    log = (workdir / "server.log").open("wb")
    env = {**os.environ, "OPSLOOP_COLLECTOR__ENABLED": "false"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opsloop.cli",
            "up",
            "--demo",
            "--demo-scenario",
            scenario,
            "--home",
            str(home),
            "--port",
            str(port),
        ],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    truth = home / "demo_ground_truth.json"
    started = time.monotonic()
    try:
        while not _scenario_done(truth):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited {proc.returncode}: see {workdir}/server.log")
            if time.monotonic() - started > timeout_s:
                raise RuntimeError("the demo scenario did not finish in time")
            time.sleep(1.0)
        wall = time.monotonic() - started
        time.sleep(settle_s)
        token = (home / "admin.token").read_text().strip()
        found = collect(url, token)
        ground = json.loads(truth.read_text())
        (workdir / "found.json").write_text(json.dumps(found))
        result = evaluate_run(ground, found["anomalies"], found["incidents"], found["runbook_runs"])
        result["wall_s"] = round(wall, 1)
        result["scenario"] = ground["scenario"]["name"]
        result["incidents_total"] = len(found["incidents"])
        result["anomalies_total"] = len(found["anomalies"])
        r = httpx.get(url + "/api/v1/models/churn", headers={"Authorization": f"Bearer {token}"})
        result["churn_versions"] = (
            [(v["version"], v["aliases"]) for v in r.json().get("versions", [])]
            if r.status_code == 200
            else []
        )
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


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
    lines += ["", f"Churn model versions after the run: {result['churn_versions']}", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenario", default="demo")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opsloop-demo-"))
    try:
        result = run_demo(work, args.scenario)
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
