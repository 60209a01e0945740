"""Alert intake under a flood: 10,000 alerts in one minute against a real `opsloop up`.

    .venv/bin/python benchmarks/alert_intake.py [--alerts 10000] [--seconds 60] [--services 50]

Each alert is one `POST /api/v1/alerts` (the worst case: Alertmanager batches several alerts per
webhook). Alerts are spread over ``--services`` services with distinct alert names; 5 % are exact
repeats (dedup) and 5 % resolve an earlier alert, so the right answer is exactly one incident per
service. Requests are sent at a fixed rate by 8 client threads; the latency of every request is
recorded. Prints p50/p95/p99/max latency, the achieved rate and the incident count.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="opsloop-bench-"))
    port = free_port()
    env = {**os.environ, "OPSLOOP_COLLECTOR__ENABLED": "false", "OPSLOOP_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsloop.cli", "up", "--home", str(tmp / "home"),
         "--port", str(port)],
        cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        token = (tmp / "home" / "admin.token").read_text().strip()
        rng = random.Random(7)
        plan = []
        sent_names: list[dict] = []
        for i in range(args.alerts):
            r = rng.random()
            if sent_names and r < 0.05:
                plan.append(dict(rng.choice(sent_names)))  # an exact repeat
            elif sent_names and r < 0.10:
                a = dict(rng.choice(sent_names))
                a["status"] = "resolved"
                plan.append(a)
            else:
                svc = f"svc{i % args.services}"
                a = {"name": f"Alert{i}", "severity": rng.choice(["warning", "error", "critical"]),
                     "labels": {"service": svc, "host": f"{svc}-host"}}  # fmt: skip
                sent_names.append(a)
                plan.append(a)
        latencies: list[float] = []
        errors = 0
        error_samples: list[str] = []
        lock = threading.Lock()
        interval = args.seconds / args.alerts
        start = time.perf_counter() + 0.5

        def worker(k: int) -> None:
            nonlocal errors
            with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
                for i in range(k, len(plan), args.threads):
                    due = start + i * interval
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    t = time.perf_counter()
                    resp = c.post(url + "/api/v1/alerts", json=plan[i])
                    dt = time.perf_counter() - t
                    with lock:
                        latencies.append(dt)
                        if resp.status_code != 200:
                            errors += 1
                            if len(error_samples) < 3:
                                error_samples.append(f"{resp.status_code} {resp.text[:200]}")

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        incidents = httpx.get(
            url + "/api/v1/incidents",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["total"]
        lat = sorted(latencies)

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

        print("| alerts | seconds | rate/min | p50 ms | p95 ms | p99 ms | max ms | errors | "
              "incidents (expected) |")  # fmt: skip
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(
            f"| {len(lat)} | {elapsed:.1f} | {len(lat) / elapsed * 60:,.0f} | {pct(0.50):.1f} | "
            f"{pct(0.95):.1f} | {pct(0.99):.1f} | {lat[-1] * 1000:.1f} | {errors} | "
            f"{incidents} ({args.services}) |"
        )
        print(f"mean {statistics.mean(lat) * 1000:.1f} ms")
        for e in error_samples:
            print("error:", e)
        return 0 if errors == 0 and incidents == args.services else 1
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    sys.exit(main())
