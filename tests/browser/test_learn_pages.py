"""Pipelines and Models pages in a real headless Chromium against a real server."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from playwright.sync_api import expect
from tests.browser.conftest import CHROMIUM, HAVE_CHROMIUM

REPO = Path(__file__).resolve().parents[2]  # the server imports `tests.learn.service_steps`

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not HAVE_CHROMIUM, reason=f"no Chromium at {CHROMIUM}"),
]


def _home(tmp_path: Path) -> Path:
    """A home with one YAML pipeline (3 steps, one retried) and a registered model."""
    from opsloop.learn.mlflow_env import MlflowEnv

    home = tmp_path / "home"
    (home / "pipelines").mkdir(parents=True)
    (home / "pipelines" / "sums.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: sums
            description: add numbers, then a step that fails once
            pythonpath: [{str(REPO)!r}]
            steps:
              - uses: tests.learn.service_steps:numbers
                params: {{n: 4}}
              - uses: tests.learn.service_steps:total
                inputs: {{rows: numbers}}
              - uses: tests.learn.service_steps:flaky
                inputs: {{value: total}}
                params: {{marker: {str(tmp_path / "flaky-marker")!r}}}
            """
        )
    )
    client = MlflowEnv(home).client()
    client.create_registered_model("churn", description="churn classifier")
    for i in (1, 2):
        client.create_model_version("churn", f"file:///x/{i}", tags={"opsloop.data_hash": f"h{i}"})
    return home


def test_run_a_pipeline_then_promote_and_roll_back_a_model(tmp_path, page):
    from tests.conftest import start_server

    srv = start_server(_home(tmp_path), tmp_path)
    try:
        page.goto(srv.url + "/login")
        page.fill("#token", srv.admin_token)
        page.click("button[type=submit]")
        page.wait_for_url(srv.url + "/")

        page.click("[data-nav=pipelines]")
        page.wait_for_url(srv.url + "/pipelines")
        expect(page.locator("#pipeline-list [data-pipeline=sums]")).to_contain_text("never run")
        page.click("[data-run-pipeline=sums]")
        page.wait_for_url(srv.url + "/pipelines/sums?started=*")
        expect(page.locator(".dag")).to_have_attribute("data-edges", "2")
        # the runs list polls until the run shows up and finishes
        done = page.locator("#pipeline-runs tr[data-status=succeeded]")
        expect(done).to_have_count(1, timeout=60_000)
        expect(page.locator("#pipeline-runs")).to_have_attribute("data-polling", "no")
        page.screenshot(path=str(tmp_path / "pipeline.png"), full_page=True)

        page.click("[data-run-pipeline=sums]")  # again: unchanged steps come from the cache
        expect(done).to_have_count(2, timeout=60_000)
        expect(done.first.locator("td.num").last).to_have_text("2/3")

        done.last.locator("a").first.click()
        page.wait_for_url(srv.url + "/pipelines/runs/*")
        expect(page.locator("#run-status")).to_have_text("succeeded")
        expect(page.locator(".dag")).to_have_attribute("data-edges", "2")
        expect(page.locator("#step-numbers .step-logs")).to_contain_text("--- attempt 1 ---")
        flaky = page.locator("#step-flaky")
        expect(flaky).to_contain_text("2 attempts (1 retry)")
        expect(flaky.locator(".step-logs")).to_contain_text("transient failure")
        expect(page.locator("#step-total")).to_contain_text("total 6")
        expect(page.locator("#lineage tbody tr")).to_have_count(3)
        page.screenshot(path=str(tmp_path / "pipeline_run.png"), full_page=True)

        page.click("[data-nav=models]")
        page.wait_for_url(srv.url + "/models")
        page.click("#model-list a:has-text('churn')")
        page.wait_for_url(srv.url + "/models/churn")
        for version, reason in (("1", "baseline"), ("2", "better f1 on last week")):
            form = page.locator(f"[data-promote='{version}']")
            form.locator("input[name=reason]").fill(reason)
            form.locator("button").click()
            page.wait_for_url(srv.url + "/models/churn?moved=champion")
            champion = page.locator("#aliases [data-alias=champion]")
            expect(champion).to_have_text(f"champion → v{version}")
        history = page.locator("[data-history=champion]")
        expect(history.locator("tbody tr").first).to_contain_text("better f1 on last week")
        expect(history.locator("tbody tr").first).to_contain_text("token:admin")
        expect(page.locator("#v2 [data-version-alias=champion]")).to_be_visible()
        page.screenshot(path=str(tmp_path / "model.png"), full_page=True)

        rollback = page.locator("[data-rollback=champion]")
        rollback.locator("input[name=reason]").fill("latency regression")
        rollback.locator("button").click()
        expect(page.locator("#aliases [data-alias=champion]")).to_have_text("champion → v1")
        expect(page.locator("#v1 [data-version-alias=champion]")).to_be_visible()
        assert page.errors == []
    finally:
        srv.stop()
