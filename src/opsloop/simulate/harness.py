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


def close_the_loop(url: str, token: str, result: dict, incidents: list[dict]) -> dict:
    """Play the operator: verdicts on the demo's incidents, then retrain the detectors.

    Incidents that hold a fault's detection are marked ``true_problem``, every other incident
    ``noise``; then the built-in ``detector-metric-settings`` pipeline runs on those labels and
    registers (and, when better than the champion by the margin, promotes) alarm settings per
    metric family. Returns the run's status and the registered versions with their aliases.
    """
    h = {"Authorization": f"Bearer {token}"}
    true_ids = {f["incident"] for f in result["faults"] if f.get("incident")}
    marked = {"true_problem": 0, "noise": 0}
    with httpx.Client(base_url=url, headers=h, timeout=60) as c:
        for inc in incidents:
            label = "true_problem" if inc["id"] in true_ids else "noise"
            r = c.post(f"/api/v1/incidents/{inc['id']}/feedback", json={"label": label})
            if r.status_code < 300:
                marked[label] += 1
        r = c.post("/api/v1/pipelines/detector-metric-settings/run", json={})
        r.raise_for_status()
        run_id = r.json()["id"]
        deadline = time.monotonic() + 300
        run: dict = {}
        while time.monotonic() < deadline:
            run = c.get(f"/api/v1/pipeline-runs/{run_id}").json()
            if run.get("status") in ("succeeded", "failed", "interrupted"):
                break
            time.sleep(1.0)
        live = c.post("/api/v1/detector-models/check")  # don't wait for the next poll
        live_version = (
            live.json().get("metric_settings", {}).get("live_version")
            if live.status_code == 200
            else None
        )
        model = c.get("/api/v1/models/opsloop-metric-settings")
        versions = (
            [(v["version"], v["aliases"]) for v in model.json()["versions"]]
            if model.status_code == 200
            else []
        )
    return {
        "marked": marked,
        "pipeline_status": run.get("status"),
        "pipeline_error": run.get("error"),
        "versions": versions,
        "live_version": live_version,
    }


def run_demo(
    workdir: Path,
    scenario: str = "demo",
    settle_s: float = 15.0,
    timeout_s: float = 600.0,
    close_loop: bool = False,
) -> dict:
    """Run ``opsloop up --demo`` until its scenario ended; return the evaluation (and, with
    ``close_loop``, what operator feedback and retraining did)."""
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
        if close_loop:
            result["loop"] = close_the_loop(url, token, result, found["incidents"])
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
