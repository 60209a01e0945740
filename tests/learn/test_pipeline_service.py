"""The pipeline service: catalogue, runs recorded in SQL and MLflow, cache, schedules, CLI."""

from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from opsloop.cli import app
from opsloop.config import PipelineSchedule, load_settings
from opsloop.learn.mlflow_env import MlflowEnv
from opsloop.services.pipeline_schedules import PipelineScheduler, SlotClaims, latest_slot
from opsloop.services.pipelines import PipelineNotFound, PipelineService
from opsloop.store.state import open_state

YAML = textwrap.dedent(
    """\
    name: sums
    description: add numbers
    steps:
      - uses: tests.learn.service_steps:numbers
        params: {n: 4}
      - uses: tests.learn.service_steps:total
        inputs: {rows: numbers}
      - uses: tests.learn.service_steps:flaky
        inputs: {value: total}
        params: {marker: MARKER}
    """
)


@pytest.fixture
def service(tmp_path):
    home = tmp_path / "home"
    (home / "pipelines").mkdir(parents=True)
    (home / "pipelines" / "sums.yaml").write_text(
        YAML.replace("MARKER", str(tmp_path / "flaky-marker"))
    )
    (home / "pipelines" / "broken.yaml").write_text("name: broken\nsteps: [\n")
    settings = load_settings(home=home)
    db = open_state(settings.effective_state_url)
    svc = PipelineService(settings, db)
    yield svc
    svc.close()
    db.close()


def test_catalogue_lists_files_and_reports_broken_ones(service):
    cat = service.catalog()
    assert cat["sums"].description == "add numbers"
    assert cat["broken"].error and "steps" not in cat["broken"].source
    described = service.describe("sums")
    assert [s["name"] for s in described["steps"]] == ["numbers", "total", "flaky"]
    assert described["steps"][1]["upstream"] == ["numbers"]
    with pytest.raises(PipelineNotFound):
        service.get("nope")


def test_second_run_reuses_unchanged_steps_and_both_are_in_sql_and_mlflow(service):
    first = service.run("sums")
    assert first.status.value == "succeeded"
    flaky = first.steps["flaky"]
    assert len(flaky.attempts) == 2 and flaky.status.value == "succeeded"  # retried once
    second = service.run("sums")
    assert second.steps["numbers"].status.value == "cached"
    assert second.steps["total"].status.value == "cached"
    assert second.steps["flaky"].status.value == "succeeded"  # cache=False always runs
    dur = lambda r: (r.finished_at - r.started_at).total_seconds()  # noqa: E731
    assert dur(second) < dur(first) * 0.6
    # changed params re-run what they touch
    third = service.run("sums", {"total": {"scale": 2}})
    assert third.steps["numbers"].status.value == "cached"
    assert third.steps["total"].status.value == "succeeded"
    assert third.steps["total"].metrics["total"] == 12.0
    recent = service.runs.recent("sums")
    assert [r.id for r in recent] == [third.id, second.id, first.id]
    client = MlflowEnv(service.settings.home).client()
    parent = client.get_run(first.tracker_run_id)
    assert parent.data.tags["opsloop.status"] == "succeeded"
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{first.tracker_run_id}'"
    )
    assert sorted(c.info.run_name for c in children) == ["flaky", "numbers", "total"]


def test_background_run_and_interrupted_runs_marked_at_start(service, tmp_path):
    run_id = service.start("sums", trigger="test")
    record = service.wait(run_id, timeout=60)
    assert record.status.value == "succeeded" and record.trigger == "test"
    # a run left "running" by a dead process becomes interrupted on the next start
    record.status = record.status.__class__("running")
    record.id = "dead-run"
    service.runs.save(record)
    again = PipelineService(service.settings, service.runs.db)
    assert again.interrupted == ["dead-run"]
    assert service.runs.get("dead-run").status.value == "interrupted"
    again.close()


def test_bad_params_and_bad_spec_fail_before_running(service):
    with pytest.raises(ValueError, match=r"has no param .nope."):
        service.start("sums", {"total": {"nope": 1}})
    with pytest.raises(Exception, match="broken"):
        service.start("broken")


def test_slots_are_claimed_once_across_processes(tmp_path):
    db = open_state(f"sqlite:///{tmp_path / 's.db'}")
    a, b = SlotClaims(db), SlotClaims(db)
    assert a.claim("p@every:60s", 960.0)
    assert not b.claim("p@every:60s", 960.0)
    assert not a.claim("p@every:60s", 900.0)
    assert b.claim("p@every:60s", 1020.0)
    db.close()


def test_scheduler_fires_once_per_slot_and_applies_missed_policy(tmp_path):
    db = open_state(f"sqlite:///{tmp_path / 's.db'}")
    now = [1000.5]
    ran: list[str] = []
    every = PipelineSchedule(pipeline="p", interval_s=60, missed="run_once")
    skip = PipelineSchedule(pipeline="q", interval_s=60, missed="skip")
    sched = PipelineScheduler(
        [every, skip], SlotClaims(db), lambda s, trig: ran.append(s.pipeline), lambda: now[0]
    )
    assert sched.catch_up() == []  # first start: nothing missed
    assert sched.fire(every) is False  # the current slot was marked seen
    now[0] = 1010.0
    assert sched.fire(every) is False  # same slot, no double run
    now[0] = 1021.0 + 600  # the process was down for ten slots
    restarted = PipelineScheduler(
        [every, skip], SlotClaims(db), lambda s, trig: ran.append(s.pipeline), lambda: now[0]
    )
    assert restarted.catch_up() == ["p@every:60s"]
    assert ran == ["p"]  # run_once caught up once, skip did not
    assert restarted.fire(every) is False
    now[0] += 60
    assert restarted.fire(every) and restarted.fire(skip)
    assert ran == ["p", "p", "q"]
    db.close()


def test_cron_slot():
    s = PipelineSchedule(pipeline="p", cron="0 3 * * *")
    assert latest_slot(s, 86400 * 2 + 3 * 3600 + 5) == 86400 * 2 + 3 * 3600
    with pytest.raises(ValueError, match="cron"):
        PipelineSchedule(pipeline="p", cron="61 * * * *")
    with pytest.raises(ValueError, match="exactly one"):
        PipelineSchedule(pipeline="p")


def test_cli_runs_a_yaml_file_and_lists_runs(tmp_path):
    home = tmp_path / "home"
    spec = tmp_path / "sums.yaml"
    spec.write_text(YAML.replace("MARKER", str(tmp_path / "marker")))
    runner = CliRunner()
    first = runner.invoke(app, ["pipelines", "run", str(spec), "--home", str(home)])
    assert first.exit_code == 0, first.output
    assert "0/3 steps reused" in first.output
    second = runner.invoke(app, ["pipelines", "run", str(spec), "--home", str(home), "--json"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.output)["cached_steps"] == ["numbers", "total"]
    listed = runner.invoke(app, ["pipelines", "runs", "--home", str(home), "--json"])
    assert len(json.loads(listed.output)) == 2
    bad = runner.invoke(
        app, ["pipelines", "run", str(spec), "--home", str(home), "-p", "total.nope=1"]
    )
    assert bad.exit_code == 2 and "has no param 'nope'" in bad.output


def test_cli_env_prints_the_tracking_uri(tmp_path):
    home = tmp_path / "h"
    result = CliRunner().invoke(app, ["env", "--home", str(home), "--shell"])
    assert result.exit_code == 0
    assert f"export MLFLOW_TRACKING_URI=sqlite:///{home.resolve()}/mlflow.db" in result.output
