"""Dashboard Pipelines and Models pages: what viewers see, what only operators may do, 404s."""

from __future__ import annotations

import re
import textwrap

import pytest

from opsloop.learn.mlflow_env import MlflowEnv

YAML = textwrap.dedent(
    """\
    name: sums
    description: add numbers
    steps:
      - uses: tests.learn.service_steps:numbers
        params: {n: 4}
      - uses: tests.learn.service_steps:total
        inputs: {rows: numbers}
    """
)


def _login(client, make_token, role: str, name: str) -> None:
    client.cookies.clear()
    r = client.post("/login", data={"token": make_token(role, name)}, follow_redirects=False)
    assert r.status_code == 303


@pytest.fixture
def pipelines(settings):
    folder = settings.home / "pipelines"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sums.yaml").write_text(YAML)
    (folder / "broken.yaml").write_text("name: broken\nsteps: [\n")
    return folder


@pytest.fixture
def no_builtins(monkeypatch):
    from opsloop.services import pipelines as svc_mod

    monkeypatch.setattr(svc_mod, "_load_builtins", lambda: None)
    monkeypatch.setattr(svc_mod.BUILTINS, "factories", {})


def test_anonymous_callers_are_sent_to_login(client):
    for path in ("/pipelines", "/pipelines/sums", "/pipelines/runs/x", "/models", "/models/m"):
        r = client.get(path, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/login"), path
    assert client.get("/ui/partials/pipeline-runs").status_code == 401
    assert client.get("/ui/partials/pipeline-runs/x").status_code == 401


def test_empty_states_say_how_to_start(client, make_token, settings, no_builtins):
    _login(client, make_token, "viewer", "vera")
    home = client.get("/")
    assert 'data-nav="pipelines"' in home.text and 'data-nav="models"' in home.text
    r = client.get("/pipelines")
    assert r.status_code == 200 and 'id="pipelines-empty"' in r.text
    assert str(settings.home / "pipelines") in r.text
    assert "opsloop pipelines run FILE.yaml" in r.text and "No runs yet." in r.text
    assert 'data-polling="no"' in r.text
    r = client.get("/models")
    assert r.status_code == 200 and 'id="models-empty"' in r.text
    assert MlflowEnv(settings.home).tracking_uri in r.text


def test_pipeline_pages_show_dag_runs_logs_and_cache_hits(
    client, make_token, platform, pipelines, no_builtins
):
    svc = platform.pipelines
    first = svc.run("sums")
    second = svc.run("sums")
    assert second.steps["total"].status.value == "cached"
    _login(client, make_token, "viewer", "vera")

    r = client.get("/pipelines")
    assert r.status_code == 200 and "Content-Security-Policy" in r.headers
    row = re.search(r'<tr data-pipeline="sums">.*?</tr>', r.text, re.S).group(0)
    assert "add numbers" in row and "run-succeeded" in row and second.id in row
    broken = re.search(r'<tr data-pipeline="broken">.*?</tr>', r.text, re.S).group(0)
    assert 'class="error small"' in broken
    assert "data-run-pipeline" not in r.text  # viewers get no Run button
    assert f'data-run="{first.id}"' in r.text and 'data-polling="no"' in r.text

    r = client.get("/pipelines/sums")
    assert r.status_code == 200
    assert "data-step=\"numbers\" data-upstream='[]'" in r.text
    assert 'data-step="total" data-upstream=\'["numbers"]\'' in r.text
    assert "dag-node st-cached" in r.text  # coloured by the latest run
    assert "tests.learn.service_steps:total" in r.text and "/static/js/dag.js" in r.text
    assert r.text.index(f'data-run="{second.id}"') < r.text.index(f'data-run="{first.id}"')
    assert re.search(rf'data-run="{second.id}".*?2/2', r.text, re.S)  # both steps reused

    r = client.get(f"/pipelines/runs/{first.id}")
    assert r.status_code == 200 and 'id="run-status">succeeded' in r.text
    assert "--- attempt 1 ---" in r.text and 'class="output step-logs"' in r.text
    assert "total <strong>6</strong>" in r.text  # the step's metric
    (out,) = first.steps["total"].outputs.values()
    assert out.content_hash[:12] in r.text and 'id="lineage"' in r.text
    assert first.tracker_run_id and first.tracker_run_id in r.text
    assert "hx-get" not in r.text  # finished: no polling

    r = client.get(f"/pipelines/runs/{second.id}")
    assert "Outputs reused from the step cache" in r.text
    assert f'data-reused-from="{first.id}"' in r.text
    body = client.get(f"/ui/partials/pipeline-runs/{second.id}").text
    assert body.startswith('<div id="run-body"') and "<html" not in body

    assert client.post("/pipelines/sums/run", follow_redirects=False).status_code == 403
    assert client.get("/pipelines/nope").status_code == 404
    assert client.get("/pipelines/runs/nope").status_code == 404
    assert client.get("/ui/partials/pipeline-runs/nope").status_code == 404


def test_operators_start_runs_and_the_list_polls_until_done(
    client, make_token, platform, pipelines, no_builtins
):
    _login(client, make_token, "operator", "otto")
    r = client.get("/pipelines")
    assert 'data-run-pipeline="sums"' in r.text
    assert 'data-run-pipeline="broken"' not in r.text  # an invalid file cannot be run
    r = client.post("/pipelines/sums/run", follow_redirects=False)
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith("/pipelines/sums?started=")
    run_id = location.split("=", 1)[1]
    page = client.get(location)
    assert 'data-polling="yes"' in page.text and 'hx-trigger="every 2s"' in page.text
    assert platform.pipelines.wait(run_id, timeout=60).status.value == "succeeded"
    done = client.get("/ui/partials/pipeline-runs?pipeline=sums")
    assert 'data-polling="no"' in done.text and f'data-run="{run_id}"' in done.text
    assert "dashboard:token:otto" in done.text
    audit = [(e.action, e.target, e.actor) for e in platform.audit.list(20)]
    assert ("pipeline.run", "sums", "token:otto") in audit
    assert client.post("/pipelines/nope/run").status_code == 404
    bad = client.post("/pipelines/broken/run")
    assert bad.status_code == 422 and 'id="run-error"' in bad.text and "cannot run" in bad.text
    # a run just started but not saved yet keeps the list polling (for a while)
    waiting = client.get("/ui/partials/pipeline-runs?pipeline=sums&expect=abc&until=9e12")
    assert 'data-polling="yes"' in waiting.text and "expect=abc" in waiting.text
    expired = client.get("/ui/partials/pipeline-runs?pipeline=sums&expect=abc&until=1")
    assert 'data-polling="no"' in expired.text


@pytest.fixture
def hourly(tmp_path):
    """An opsloop.toml (read from the working directory) scheduling ``sums`` every hour."""
    (tmp_path / "opsloop.toml").write_text(
        '[[pipelines.schedules]]\npipeline = "sums"\ninterval_s = 3600\nmissed = "skip"\n'
    )


def test_schedules_show_with_their_next_run(hourly, client, make_token, pipelines, no_builtins):
    _login(client, make_token, "viewer", "vera")
    row = re.search(r'<tr data-pipeline="sums">.*?</tr>', client.get("/pipelines").text, re.S)
    assert "every 3600 s" in row.group(0) and "next 20" in row.group(0)
    r = client.get("/pipelines/sums")
    table = re.search(r'<table class="tbl" id="schedules">.*?</table>', r.text, re.S).group(0)
    assert "every 3600 s" in table and "skip" in table and "—" not in table
    assert "Runs only by hand" in client.get("/pipelines/broken").text


def _register(settings, run_id: str) -> None:
    client = MlflowEnv(settings.home).client()
    client.create_registered_model("churn", description="churn classifier")
    run = client.create_run("0")
    client.log_metric(run.info.run_id, "f1", 0.875)
    client.log_param(run.info.run_id, "depth", "3")
    client.create_model_version("churn", "file:///x/1")
    tags = {
        "opsloop.pipeline_run_id": run_id,
        "opsloop.data_hash": "d4t4h4sh",
        "opsloop.params": '{"k":3}',
        "opsloop.eval.precision": "0.9",
        "team": "ml",
    }
    client.create_model_version("churn", "file:///x/2", run_id=run.info.run_id, tags=tags)


def test_model_pages_versions_lineage_and_audited_moves(client, make_token, settings, platform):
    _register(settings, "run123")
    _login(client, make_token, "viewer", "vera")
    r = client.get("/models")
    assert r.status_code == 200 and 'data-model="churn"' in r.text and "v2" in r.text
    r = client.get("/models/churn")
    assert r.status_code == 200 and "No alias points at a version yet." in r.text
    v2 = re.search(r'<li class="version-card" id="v2".*?</li>', r.text, re.S).group(0)
    assert '<a href="/pipelines/runs/run123">' in v2 and "d4t4h4sh" in v2
    assert "f1 <strong>0.875</strong>" in v2 and "precision <strong>0.9</strong>" in v2
    assert "{&#34;k&#34;: 3}" in v2 and "team=ml" in v2 and '{"depth": "3"}' in v2
    assert "promote-form" not in r.text  # viewers cannot move aliases
    form = {"version": "1", "alias": "champion", "reason": "x"}
    assert client.post("/models/churn/promote", data=form).status_code == 403
    assert client.post("/models/churn/rollback", data={"reason": "x"}).status_code == 403
    assert client.get("/models/nope").status_code == 404

    _login(client, make_token, "operator", "otto")
    assert 'data-promote="2"' in client.get("/models/churn").text
    for version, reason in (("1", "baseline"), ("2", "better recall")):
        form = {"version": version, "alias": "champion", "reason": reason}
        r = client.post("/models/churn/promote", data=form, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/models/churn?moved=champion")
    r = client.get("/models/churn")
    assert 'data-alias="champion" data-version="2"' in r.text
    history = re.search(r'data-history="champion".*?</section>', r.text, re.S).group(0)
    assert history.index("better recall") < history.index("baseline")  # newest first
    assert "token:otto" in history and "Roll back champion to v1" in history
    r = client.post("/models/churn/rollback", data={"alias": "champion", "reason": "drift"})
    assert r.status_code == 200 and 'data-alias="champion" data-version="1"' in r.text
    moves = [(e.action, e.actor, e.note) for e in platform.audit.list(20)]
    assert ("model.rollback", "token:otto", "drift") in moves
    assert ("model.promote", "token:otto", "better recall") in moves

    bad = client.post("/models/churn/promote", data={"version": "1", "alias": "Latest"})
    assert bad.status_code == 422 and 'role="alert"' in bad.text and "lower-case" in bad.text
    assert client.post("/models/churn/promote", data={"version": "9"}).status_code == 404
    again = client.post("/models/churn/rollback", data={"alias": "champion"})
    assert again.status_code == 409 and "no earlier version" in again.text
    assert client.post("/models/nope/promote", data={"version": "1"}).status_code == 404
    cross = client.post(
        "/models/churn/promote", data=form, headers={"Origin": "http://evil.example"}
    )
    assert cross.status_code == 403


def test_doctests():
    import doctest

    from opsloop.web import models_pages, pipelines_pages

    for module in (pipelines_pages, models_pages):
        result = doctest.testmod(module)
        assert result.attempted >= 1 and result.failed == 0, module.__name__


def test_model_page_shows_traffic_and_monitoring_series(client, make_token, settings):
    import time as _time

    from opsloop.learn.mlflow_env import MlflowEnv
    from opsloop.store.telemetry.metrics import MetricSample
    from opsloop.store.telemetry.predictions import PredictionRecord

    env = MlflowEnv(settings.home)
    env.client().create_registered_model("churn")
    env.client().create_model_version("churn", "file:///nowhere/churn/1")
    platform = client.app.state.platform
    now = _time.time()
    platform.predictions.append(
        [PredictionRecord(now, "churn", "1", "champion", "r1", {"tenure": 3}, [1], 2.0)]
    )
    labels = {"model": "churn", "version": "1", "feature": "tenure", "method": "ks"}
    platform.metrics.ingest([MetricSample("model_drift_score", 0.003, now - 60, labels)])
    platform.metrics.ingest([MetricSample("model_accuracy", 0.91, now - 60, {"model": "churn"})])
    platform.metrics.ingest([MetricSample("model_accuracy", 0.5, now - 60, {"model": "other"})])
    _login(client, make_token, "viewer", "vera")
    html = client.get("/models/churn").text
    assert 'id="traffic-predictions">1<' in html
    assert "model_drift_score" in html and "feature=tenure" in html
    assert "/series/view?name=model_drift_score" in html
    assert html.count("model_accuracy</a>") == 1  # the other model's series is not listed
