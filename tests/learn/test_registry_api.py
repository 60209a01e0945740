"""Registry operations: promote/rollback with alias history, audited, through API and CLI."""

from __future__ import annotations

import json
import textwrap
import time

import pytest
from typer.testing import CliRunner

from opsloop.cli import app
from opsloop.learn.mlflow_env import MlflowEnv
from opsloop.learn.registry import ModelRegistry, RegistryError


def _register(env: MlflowEnv, name: str, versions: int) -> None:
    """Versions pointing at placeholder sources: registry operations never load them."""
    client = env.client()
    client.create_registered_model(name)
    for i in range(versions):
        client.create_model_version(name, f"file:///nowhere/{name}/{i}")


def test_promote_and_rollback_keep_history(tmp_path):
    env = MlflowEnv(tmp_path)
    _register(env, "churn", 3)
    moves = []
    reg = ModelRegistry(env, moves.append)
    assert reg.resolve("churn") is None
    with pytest.raises(RegistryError, match="no alias"):
        reg.rollback("churn")
    reg.promote("churn", 1, reason="first")
    reg.promote("churn", 3, reason="better f1")
    reg.promote("churn", 2, alias="challenger")
    assert reg.resolve("churn") == "3" and reg.resolve("churn", "challenger") == "2"
    back = reg.rollback("churn", reason="drift")
    assert (back.version, back.previous, back.action) == ("1", "3", "rollback")
    assert reg.resolve("churn") == "1"
    with pytest.raises(RegistryError, match="no earlier version"):
        reg.rollback("churn")
    assert [m.action for m in moves] == ["promote", "promote", "promote", "rollback"]
    shown = reg.show("churn")
    assert [v["version"] for v in shown["versions"]] == ["3", "2", "1"]
    assert shown["versions"][2]["aliases"] == ["champion"]
    with pytest.raises(RegistryError, match="no version 9"):
        reg.promote("churn", 9)
    with pytest.raises(RegistryError, match="no registered model"):
        reg.promote("nope", 1)
    with pytest.raises(RegistryError, match="alias 'Latest'"):
        reg.promote("churn", 1, alias="Latest")


def test_alias_set_outside_opsloop_can_be_rolled_back_to(tmp_path):
    env = MlflowEnv(tmp_path)
    _register(env, "m", 2)
    env.client().set_registered_model_alias("m", "champion", "1")  # plain MLflow
    reg = ModelRegistry(env)
    reg.promote("m", 2)
    assert reg.rollback("m").version == "1"


def test_api_promote_rollback_are_audited(client, make_token, settings):
    env = MlflowEnv(settings.home)
    _register(env, "churn", 2)
    viewer = {"Authorization": f"Bearer {make_token('viewer', 'v')}"}
    op = {"Authorization": f"Bearer {make_token('operator', 'op')}"}
    assert client.get("/api/v1/models").status_code == 401
    models = client.get("/api/v1/models", headers=viewer).json()["models"]
    assert [(m["name"], m["latest_version"]) for m in models] == [("churn", "2")]
    body = {"version": 1, "reason": "baseline"}
    assert client.post("/api/v1/models/churn/promote", headers=viewer, json=body).status_code == 403
    r = client.post("/api/v1/models/churn/promote", headers=op, json=body)
    assert r.status_code == 200 and r.json()["version"] == "1"
    r = client.post("/api/v1/models/churn/promote", headers=op, json={"version": "2"})
    assert r.json()["previous"] == "1"
    r = client.post("/api/v1/models/churn/rollback", headers=op, json={"reason": "latency"})
    assert r.status_code == 200 and r.json()["version"] == "1"
    assert client.get("/api/v1/models/churn", headers=viewer).json()["aliases"] == {"champion": "1"}
    assert client.get("/api/v1/models/nope", headers=viewer).status_code == 404
    bad = client.post("/api/v1/models/churn/promote", headers=op, json={"version": 7})
    assert bad.status_code == 404
    audit = client.app.state.platform.audit.list(10)
    moves = [(e.action, e.target, e.actor, e.note) for e in audit if e.action.startswith("model.")]
    assert moves[0] == ("model.rollback", "churn@champion", "token:op", "latency")
    assert ("model.promote", "churn@champion", "token:op", "baseline") in moves


def test_cli_promote_and_rollback(tmp_path):
    home = tmp_path / "home"
    _register(MlflowEnv(home), "churn", 2)
    run = CliRunner().invoke
    out = run(app, ["models", "promote", "churn", "1", "--home", str(home), "--reason", "x"])
    assert out.exit_code == 0 and "churn@champion → v1" in out.output
    run(app, ["models", "promote", "churn", "2", "--home", str(home)])
    out = run(app, ["models", "rollback", "churn", "--home", str(home)])
    assert out.exit_code == 0 and "→ v1 (rolled back from v2)" in out.output
    listed = json.loads(run(app, ["models", "list", "--home", str(home), "--json"]).output)
    assert listed[0]["aliases"] == {"champion": "1"}
    missing = run(app, ["models", "show", "nope", "--home", str(home)])
    assert missing.exit_code == 1 and "no registered model 'nope'" in missing.output


def test_pipelines_api_runs_and_reports_cache(client, make_token, settings):
    folder = settings.home / "pipelines"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sums.yaml").write_text(
        textwrap.dedent(
            """\
            name: sums
            steps:
              - uses: tests.learn.service_steps:numbers
              - uses: tests.learn.service_steps:total
                inputs: {rows: numbers}
            """
        )
    )
    op = {"Authorization": f"Bearer {make_token('operator', 'op')}"}
    listed = client.get("/api/v1/pipelines", headers=op).json()["pipelines"]
    assert "sums" in [p["name"] for p in listed]
    dag = client.get("/api/v1/pipelines/sums", headers=op).json()
    assert dag["steps"][1]["upstream"] == ["numbers"]
    ids = []
    for _ in range(2):
        r = client.post("/api/v1/pipelines/sums/run", headers=op, json={})
        assert r.status_code == 202
        ids.append(r.json()["id"])
        for _ in range(400):
            run = client.get(f"/api/v1/pipeline-runs/{ids[-1]}", headers=op)
            if run.status_code == 200 and run.json()["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.05)
        assert run.json()["status"] == "succeeded", run.json()
    assert run.json()["summary"]["cached_steps"] == ["numbers", "total"]
    runs = client.get("/api/v1/pipeline-runs?pipeline=sums", headers=op).json()["runs"]
    assert [r["id"] for r in runs] == ids[::-1]
    assert runs[1]["cached_steps"] == [] and runs[0]["mlflow_run_id"]
    r = client.post("/api/v1/pipelines/sums/run", headers=op, json={"params": {"x": {"y": 1}}})
    assert r.status_code == 422 and "unknown step 'x'" in r.json()["detail"]
    assert client.post("/api/v1/pipelines/nope/run", headers=op).status_code == 404
    assert client.get("/api/v1/pipeline-runs/nope", headers=op).status_code == 404


RUNBOOK = """
name: retrain-and-rollback
triggers: [{manual: {}}]
steps:
  - id: retrain
    pipeline: {name: sums, params: {numbers: {n: 3}}, wait: true}
  - id: back
    model: {action: rollback, name: churn, reason: "drift on ${params.feature}"}
parameters:
  feature: {type: string, default: tenure}
"""


def test_runbook_steps_start_pipelines_and_roll_back_models(client, make_token, settings):
    (settings.home / "pipelines").mkdir(parents=True, exist_ok=True)
    (settings.home / "pipelines" / "sums.yaml").write_text(
        "name: sums\nsteps:\n  - uses: tests.learn.service_steps:numbers\n"
    )
    (settings.home / "runbooks").mkdir(parents=True, exist_ok=True)
    (settings.home / "runbooks" / "rb.yaml").write_text(RUNBOOK)
    env = MlflowEnv(settings.home)
    _register(env, "churn", 2)
    platform = client.app.state.platform
    platform.registry.promote("churn", 1)
    platform.registry.promote("churn", 2)
    platform.runbooks.reload()
    op = {"Authorization": f"Bearer {make_token('operator', 'op')}"}
    assert platform.runbooks.errors == []
    r = client.post("/api/v1/runbooks/retrain-and-rollback/run", headers=op, json={})
    assert r.status_code == 202
    for _ in range(400):
        run = client.get(f"/api/v1/runbook-runs/{r.json()['id']}", headers=op).json()
        if run["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    assert run["status"] == "succeeded", json.dumps(run)
    retrain = run["steps"][0]
    runs = platform.pipelines.runs.recent("sums")
    assert len(runs) == 1 and runs[0].status.value == "succeeded"
    assert runs[0].trigger.startswith("runbook:retrain-and-rollback")
    assert retrain["status"] == "succeeded"
    assert platform.registry.resolve("churn") == "1"
    audit = [(e.action, e.actor, e.note) for e in platform.audit.list(20)]
    assert ("model.rollback", "runbook:retrain-and-rollback", "drift on tenure") in audit
