"""Run ``opsloop up --demo`` as a real server process until its scenario has played, then
score what opsloop found against the simulator's ground truth (benchmarks and e2e tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
