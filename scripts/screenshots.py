"""Screenshots of the dashboard for the docs: ``docs/screenshots/<page>.png``.

    python scripts/screenshots.py                 # demo scenario + sample data, every page
    python scripts/screenshots.py --simulate none # sample data only (faster)
    python scripts/screenshots.py --no-seed --simulate none   # host metrics only
    python scripts/screenshots.py --out /tmp/shots --chromium /usr/bin/chromium

Starts ``opsloop up`` on a throw-away home and a free port, runs ``opsloop simulate`` with the
built-in ``demo`` scenario against it (about 45 s: a simulated estate's logs and metrics with
six faults), seeds the rest through the HTTP API (an Alertmanager alert, a silence, the example
runbooks with a dry run, the example tabular pipeline and its registered model; without the
simulation also sample log lines and a metric history), logs into the dashboard with headless
Chromium (Playwright) and saves one 1280x800 PNG per page.
The alert also triggers the example ``collect-diagnostics`` runbook, which runs read-only
commands (``uptime``, ``free``, ``df``, ``ps``, ``dmesg``) on this machine. Nothing leaves it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1280, "height": 800}
# (file name, path, a selector that shows the page has its data)
PAGES = [
    ("overview", "/", "#chart-host_cpu_percent canvas"),
    ("incidents", "/incidents", "main"),
    ("metrics", "/series", "main"),
    ("logs", "/logs", "main"),
    ("runbooks", "/runbooks", "main"),
    ("pipelines", "/pipelines", "main"),
    ("models", "/models", "main"),
    ("silences", "/silences", "main"),
]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


class Server:
    """``opsloop up`` in a child process on a throw-away home."""

    def __init__(self, work: Path) -> None:
        import httpx

        self.home = work / "home"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        runbooks = self.home / "runbooks"
        runbooks.mkdir(parents=True)
        from opsloop.act.runbooks import EXAMPLES_DIR

        for f in sorted(Path(EXAMPLES_DIR).glob("*.yaml")):
            shutil.copyfile(f, runbooks / f.name)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
        env.update(
            OPSLOOP_COLLECTOR__INTERVAL_S="1",
            OPSLOOP_LOG_LEVEL="warning",
            # the example pipeline (uses: examples.tabular.steps:...) in the catalogue
            OPSLOOP_PIPELINES__PATHS=json.dumps([str(ROOT / "examples" / "tabular")]),
            OPSLOOP_NOTIFY__RECEIVERS=json.dumps(
                {"oncall": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}}
            ),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        )
        self.log = work / "server.log"
        cmd = [sys.executable, "-m", "opsloop.cli", "up", "--home", str(self.home)]
        cmd += ["--port", str(self.port)]
        self.proc = subprocess.Popen(
            cmd, cwd=work, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT
        )

        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                return httpx.get(self.url + "/api/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 60, "the server to answer")
        self.token = (self.home / "admin.token").read_text().strip()
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60
        )

    def stop(self) -> None:
        """SIGTERM, then wait (kill after 15 s)."""
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def simulate(srv: Server, scenario: str, work: Path) -> None:
    """Run ``opsloop simulate`` against the server until the scenario ends."""
    cmd = [sys.executable, "-m", "opsloop.cli", "simulate", "--scenario", scenario]
    cmd += ["--url", srv.url, "--token-file", str(srv.home / "admin.token"), "--quiet"]
    cmd += ["--ground-truth", str(work / "ground_truth.json")]
    log = work / "simulate.log"
    with log.open("wb") as out:
        code = subprocess.call(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, timeout=600)
    if code != 0:
        raise SystemExit(f"opsloop simulate exited {code}: {log.read_text()[-2000:]}")


def seed(srv: Server, pipeline: bool = True, telemetry: bool = True) -> None:
    """Sample data through the public API, the way an installation would receive it."""
    rng = random.Random(3)  # noqa: S311 - sample data, not secrets
    now = time.time()
    if telemetry:
        seed_telemetry(srv, rng, now)

    # an alert from Alertmanager, and a silence for a noisy one
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 120))
    alert = {
        "version": "4",
        "status": "firing",
        "receiver": "opsloop",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "PostgresDown",
                    "severity": "critical",
                    "service": "postgres",
                    "host": "db1",
                },
                "annotations": {"summary": "PostgreSQL on db1 does not answer"},
                "startsAt": stamp,
            },
            {
                "status": "firing",
                "labels": {
                    "alertname": "HighLatency",
                    "severity": "warning",
                    "service": "nginx",
                    "host": "web1",
                },
                "annotations": {"summary": "p99 latency above 800 ms"},
                "startsAt": stamp,
            },
        ],
    }
    srv.http.post("/api/v1/alerts/alertmanager", json=alert).raise_for_status()
    srv.http.post(
        "/api/v1/silences",
        json={
            "matchers": '{alertname="DiskSpaceLow", env="staging"}',
            "duration": "4h",
            "comment": "staging disks are rebuilt tonight",
        },
    ).raise_for_status()

    # a dry run of a runbook: what it would execute, nothing runs
    srv.http.post(
        "/api/v1/runbooks/clean-old-files/run",
        json={"params": {"days": 14}, "dry_run": True},
    ).raise_for_status()

    if pipeline:
        run = srv.http.post(
            "/api/v1/pipelines/tabular-classifier/run",
            json={"params": {"train": {"n_trials": 5, "cv": 3}}},
        )
        run.raise_for_status()
        run_id = run.json()["id"]

        def finished() -> bool:
            answer = srv.http.get(f"/api/v1/pipeline-runs/{run_id}")
            if answer.status_code == 404:  # not recorded yet
                return False
            status = answer.json()["status"]
            if status in ("failed", "interrupted"):
                raise SystemExit(f"the example pipeline {status}; see {srv.log}")
            return status == "succeeded"

        wait_for(finished, 300, "the example pipeline")
        srv.http.post(
            "/api/v1/models/tabular-classifier/promote",
            json={"version": "1", "alias": "champion", "reason": "first version"},
        ).raise_for_status()


def seed_telemetry(srv: Server, rng: random.Random, now: float) -> None:
    """Log lines and a metric history with an anomaly."""
    # logs over the last 12 hours: three request templates, a rare warning, then a burst
    # of it and a never-seen line (NDJSON with timestamps)
    records = []
    for n in range(1440):
        t = now - 12 * 3600 + 30 * n
        req = f"req-{n:05x}"
        records += [
            (t, "info", f"api: {req} GET /orders/{rng.randint(1, 999)} from 10.0.0.{n % 50}"),
            (t, "info", f"db: {req} query took {rng.randint(2, 40)} ms"),
            (t + 1, "info", f"api: {req} answered 200 in {rng.randint(5, 90)} ms"),
        ]
        if n % 60 == 0:
            records.append((t + 1, "warning", "db: connection to 10.0.0.5:5432 refused"))
    records += [
        (now - 90 + j, "warning", "db: connection to 10.0.0.5:5432 refused") for j in range(40)
    ]
    records.append((now - 30, "critical", "disk: /var/lib/postgresql is read-only"))
    body = "\n".join(
        json.dumps({"timestamp": t, "level": level, "host": "web-1", "message": message})
        for t, level, message in records
    )
    srv.http.post(
        "/api/v1/logs?source=orders-api",
        content=body,
        headers={"Content-Type": "application/x-ndjson"},
    ).raise_for_status()

    # two days of a request-rate series at 5-minute steps with a daily cycle and a spike
    samples = []
    start = now - 2 * 86400
    for i in range(2 * 288):
        t = start + 300 * i
        value = 120 + 60 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 6)
        if i == 2 * 288 - 20:
            value += 400
        for service, scale in (("orders", 1.0), ("billing", 0.4)):
            samples.append(
                {
                    "name": "app_requests_per_second",
                    "value": round(value * scale, 2),
                    "timestamp": t,
                    "labels": {"service": service, "host": "web-1"},
                }
            )
    srv.http.post("/api/v1/metrics", json={"samples": samples}).raise_for_status()


def shoot(srv: Server, out: Path, chromium: str) -> list[Path]:
    """Log in and save one PNG per page."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport=VIEWPORT, color_scheme="light").new_page()
        page.goto(srv.url + "/login")
        page.fill("#token", srv.token)
        page.click("button[type=submit]")
        page.wait_for_url(srv.url + "/")
        for name, path, ready in PAGES:
            page.goto(srv.url + path)
            page.wait_for_selector(ready, timeout=30_000)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(800)  # charts draw after their data arrives
            target = out / f"{name}.png"
            page.screenshot(path=str(target))
            written.append(target)
        browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    """Start, seed, shoot, stop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder (default {OUT})")
    parser.add_argument("--chromium", default=CHROMIUM, help="Chromium executable")
    parser.add_argument("--no-seed", action="store_true", help="no sample data")
    parser.add_argument(
        "--simulate", default="demo", help="scenario for `opsloop simulate`, or 'none'"
    )
    parser.add_argument("--no-pipeline", action="store_true", help="skip the example pipeline")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="opsloop-shots-") as tmp:
        work = Path(tmp)
        srv = Server(work)
        try:
            simulating = args.simulate != "none"
            if simulating:
                simulate(srv, args.simulate, work)
            if not args.no_seed:
                seed(srv, pipeline=not args.no_pipeline, telemetry=not simulating)
            # the Overview's host charts need a few samples
            time.sleep(4)
            for path in shoot(srv, args.out, args.chromium):
                print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
        finally:
            srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
