"""Runbooks through the API: list with errors, dry run, run, approvals, kill switch, triggers."""

import json
import sys
import time

RUNBOOK = """
name: echo-host
description: Echo the alert's host label as one argument.
triggers:
  - alert: {{matchers: '{{alertname="EchoMe"}}'}}
  - manual: {{}}
parameters:
  out: {{type: path, default: {out}, under: [{tmp}]}}
  host: {{type: string, default: "${{event.labels.host}}"}}
steps:
  - id: write
    shell:
      argv: ["{python}", "-c", "{code}", "${{params.out}}", "${{params.host}}"]
      timeout_s: 20
"""

# the program records exactly the arguments it was given
CODE = "import json,sys; open(sys.argv[1], 'a').write(json.dumps(sys.argv[2:]) + chr(10))"

APPROVAL = """
name: needs-ok
triggers: [{manual: {}}]
policies: {requires_approval: {role: admin, timeout_s: 30}}
steps:
  - shell: {argv: ["true"]}
"""


def setup(settings, tmp_path):
    folder = settings.home / "runbooks"
    folder.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "echo.jsonl"
    (folder / "echo.yaml").write_text(
        RUNBOOK.format(out=out, tmp=tmp_path, python=sys.executable, code=CODE)
    )
    (folder / "needs-ok.yaml").write_text(APPROVAL)
    (folder / "broken.yaml").write_text("name: broken\nsteps:\n  - shell: {argv: 'rm -rf /'}\n")
    return out


def wait_run(client, h, run_id, statuses=("succeeded", "failed", "rejected", "skipped")):
    for _ in range(200):
        run = client.get(f"/api/v1/runbook-runs/{run_id}", headers=h).json()
        if run.get("status") in statuses:
            return run
        time.sleep(0.05)
    raise AssertionError(run)


def test_list_dry_run_and_run(client, make_token, settings, tmp_path):
    out = setup(settings, tmp_path)
    client.app.state.platform.runbooks.reload()
    h = {"Authorization": f"Bearer {make_token('operator')}"}
    body = client.get("/api/v1/runbooks", headers=h).json()
    assert {r["name"] for r in body["runbooks"]} == {"echo-host", "needs-ok"}
    assert any("broken.yaml:3" in e and "argv" in e for e in body["errors"])
    dry = client.post("/api/v1/runbooks/echo-host/run", headers=h,
                      json={"dry_run": True, "params": {"host": "db1"}}).json()  # fmt: skip
    assert dry["status"] == "succeeded" and dry["dry_run"] is True
    assert dry["steps"][0]["rendered"]["argv"][-1] == "db1"
    assert not out.exists()  # a dry run runs nothing
    r = client.post("/api/v1/runbooks/echo-host/run", headers=h, json={"params": {"host": "web1"}})
    assert r.status_code == 202
    run = wait_run(client, h, r.json()["id"])
    assert run["status"] == "succeeded" and run["steps"][0]["exit_code"] == 0
    assert json.loads(out.read_text()) == ["web1"]
    runs = client.get("/api/v1/runbook-runs", headers=h).json()["runs"]
    assert [x["id"] for x in runs][:1] == [r.json()["id"]]
    assert client.post("/api/v1/runbooks/nope/run", headers=h).status_code == 404


def test_alert_labels_reach_the_program_as_plain_arguments(client, make_token, settings, tmp_path):
    out = setup(settings, tmp_path)
    client.app.state.platform.runbooks.reload()
    h = {"Authorization": f"Bearer {make_token('operator')}"}
    evil = "x; touch /tmp/opsloop-pwned $(touch /tmp/opsloop-pwned2) `id` \n ../../etc"
    r = client.post("/api/v1/alerts", headers=h,
                    json={"name": "EchoMe", "labels": {"host": evil}})  # fmt: skip
    inc = r.json()["results"][0]["incident_id"]
    for _ in range(200):
        if out.exists():
            break
        time.sleep(0.05)
    assert json.loads(out.read_text()) == [evil]
    import os

    assert not os.path.exists("/tmp/opsloop-pwned") and not os.path.exists("/tmp/opsloop-pwned2")
    runs = client.get("/api/v1/runbook-runs", headers=h).json()["runs"]
    assert runs[0]["incident_id"] == inc
    timeline = client.get(f"/api/v1/incidents/{inc}", headers=h).json()["timeline"]
    assert any("runbook echo-host" in e["message"] for e in timeline)


def test_approval_gate_and_kill_switch(client, make_token, settings, tmp_path):
    setup(settings, tmp_path)
    svc = client.app.state.platform.runbooks
    svc.reload()
    op = {"Authorization": f"Bearer {make_token('operator')}"}
    admin = {"Authorization": f"Bearer {make_token('admin')}"}
    run_id = client.post("/api/v1/runbooks/needs-ok/run", headers=op).json()["id"]
    wait_run(client, op, run_id, ("waiting_approval",))
    assert client.post(f"/api/v1/runbook-runs/{run_id}/approve", headers=op).status_code == 403
    assert client.post(f"/api/v1/runbook-runs/{run_id}/approve", headers=admin).status_code == 200
    assert wait_run(client, op, run_id)["status"] == "succeeded"
    assert client.post("/api/v1/runbooks/kill-switch", headers=op).status_code == 403
    assert client.post("/api/v1/runbooks/kill-switch", headers=admin).json()["kill_switch"]
    refused = client.post("/api/v1/runbooks/echo-host/run", headers=op).json()
    assert refused["status"] == "skipped"
    client.post("/api/v1/runbooks/kill-switch?engage=false", headers=admin)
    actions = {e.action for e in client.app.state.platform.audit.list()}
    assert {"runbook.run", "runbook.approve", "runbook.kill_switch"} <= actions


def test_unfinished_runs_are_marked_interrupted_on_start(settings, platform):
    from opsloop.act.runbooks.records import RunRecord, RunStatus
    from opsloop.services.runbooks import RunbookService

    svc = platform.runbooks
    svc.store.save(RunRecord(id="r1", runbook="x", status=RunStatus.RUNNING, created=time.time()))
    again = RunbookService(settings, platform.state)
    assert again.store.get("r1")["status"] == "interrupted"
