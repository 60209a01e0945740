"""End-to-end: a disk-exhaustion forecast triggers the clean-up runbook on a temp folder; the run
and its output show in the API and the dashboard, and the incident shows what was done."""

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import start_server, wait_for

from opsloop.act.runbooks import EXAMPLES_DIR

pytestmark = pytest.mark.e2e


def test_forecast_triggers_clean_up_runbook(tmp_path):
    victim = tmp_path / "scratch"
    victim.mkdir()
    old, new = victim / "old.log", victim / "new.log"
    old.write_text("x" * 1000)
    new.write_text("y")
    month_ago = time.time() - 30 * 86400
    os.utime(old, (month_ago, month_ago))
    home = tmp_path / "home"
    (home / "runbooks").mkdir(parents=True)
    # the shipped example, pointed at the temp folder (as a user would edit their copy)
    text = (Path(EXAMPLES_DIR) / "clean-old-files.yaml").read_text()
    text = text.replace("default: /var/tmp", f"default: {victim}")
    text = text.replace("under: [/var/tmp, /var/log/app, /tmp]", f"under: [{tmp_path}]")
    (home / "runbooks" / "clean-old-files.yaml").write_text(text)
    assert shutil.which("find") and shutil.which("df")

    srv = start_server(home, tmp_path)
    h = {"Authorization": f"Bearer {srv.admin_token}"}
    try:
        names = [
            r["name"] for r in httpx.get(srv.url + "/api/v1/runbooks", headers=h).json()["runbooks"]
        ]
        assert names == ["clean-old-files"]
        # a disk filling 1 %/h: crossing 95 % is forecast within the week
        now = time.time()
        labels = {"mount": "/data", "host": "db1"}
        start = now - 20 * 3600
        samples = [
            {"name": "host_disk_percent", "value": 60 + i / 12, "timestamp": start + i * 300,
             "labels": labels}
            for i in range(241)
        ]  # fmt: skip
        r = httpx.post(srv.url + "/api/v1/metrics", json=samples, headers=h, timeout=60)
        assert r.json()["anomalies"] >= 1

        def finished_run():
            runs = httpx.get(srv.url + "/api/v1/runbook-runs", headers=h).json()["runs"]
            done = [x for x in runs if x["status"] in ("succeeded", "failed")]
            return done[0] if done else None

        run = wait_for(finished_run, timeout=30)
        assert run["status"] == "succeeded", run
        assert run["trigger"]["kind"] == "anomaly"
        assert not old.exists() and new.exists()  # only the old file went
        detail = httpx.get(srv.url + f"/api/v1/runbook-runs/{run['id']}", headers=h).json()
        delete = next(s for s in detail["steps"] if s["label"] == "delete")
        assert delete["rendered"]["argv"][:2] == ["find", str(victim)] and delete["exit_code"] == 0
        listed = next(s for s in detail["steps"] if s["label"] == "candidates")
        assert str(old) in listed["stdout"]

        incident = detail["incident_id"]
        assert incident
        timeline = httpx.get(srv.url + f"/api/v1/incidents/{incident}", headers=h).json()[
            "timeline"
        ]
        text = " | ".join(e["message"] for e in timeline)
        assert "runbook clean-old-files" in text and "Cleaned files older than 14 days" in text

        # the dashboard shows the run with its steps
        with httpx.Client(base_url=srv.url) as web:
            web.post("/login", data={"token": srv.admin_token})
            page = web.get(f"/runbooks/runs/{run['id']}").text
            assert "clean-old-files" in page and "succeeded" in page and str(old) in page
            assert run["id"] in web.get("/runbooks").text
    finally:
        srv.stop()


def test_crash_mid_run_marks_the_run_interrupted(tmp_path):
    import signal

    home = tmp_path / "home"
    (home / "runbooks").mkdir(parents=True)
    (home / "runbooks" / "slow.yaml").write_text(
        "name: slow\ntriggers: [{manual: {}}]\n"
        "steps:\n  - shell: {argv: [sleep, '30'], timeout_s: 60}\n"
    )
    srv = start_server(home, tmp_path)
    h = {"Authorization": f"Bearer {srv.admin_token}"}
    run_id = httpx.post(srv.url + "/api/v1/runbooks/slow/run", headers=h).json()["id"]
    url = srv.url + f"/api/v1/runbook-runs/{run_id}"
    wait_for(lambda: httpx.get(url, headers=h).json()["status"] == "running")
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    again = start_server(home, tmp_path)
    try:
        h = {"Authorization": f"Bearer {again.admin_token}"}
        run = httpx.get(again.url + f"/api/v1/runbook-runs/{run_id}", headers=h).json()
        assert run["status"] == "interrupted" and "not re-run" in run["error"]
        time.sleep(0.5)
        runs = httpx.get(again.url + "/api/v1/runbook-runs", headers=h).json()["runs"]
        assert [x["id"] for x in runs] == [run_id]  # nothing was started again
    finally:
        again.stop()
