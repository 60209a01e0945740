"""The dashboard in a real headless Chromium (Debian's), driven by Playwright."""

import pytest
from playwright.sync_api import expect
from tests.browser.conftest import CHROMIUM, HAVE_CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not HAVE_CHROMIUM, reason=f"no Chromium at {CHROMIUM}"),
]


def test_login_and_see_the_cpu_chart(server, page, tmp_path):
    page.goto(server.url + "/")
    assert page.url.endswith("/login")
    page.fill("#token", "not-a-token")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "That token is not valid."
    page.errors.clear()  # the 401 of the failed login is logged by Chromium as a console error

    page.fill("#token", server.admin_token)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/")
    assert page.locator("h1").first.inner_text() == "Overview"
    assert page.locator("[data-nav=overview]").get_attribute("class") == "active"

    cpu = page.locator("#chart-host_cpu_percent")
    # the collector samples every second in tests; the page refreshes every 10 s
    page.wait_for_selector("#chart-host_cpu_percent canvas", timeout=25_000)
    assert int(cpu.get_attribute("data-points")) >= 1
    box = cpu.locator("canvas").bounding_box()
    assert box["width"] > 200 and box["height"] > 100
    # htmx fills the summary with the latest values
    page.wait_for_selector("#host-summary .stat", timeout=15_000)
    assert "CPU" in page.locator("#host-summary").inner_text()
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
    assert page.errors == []

    # the session cookie is HTTP-only: scripts cannot read it
    assert page.evaluate("document.cookie") == ""
    page.click("text=Log out")
    page.wait_for_url(server.url + "/login")


def login(page, server):
    page.goto(server.url + "/login")
    page.fill("#token", server.admin_token)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/")


def test_logs_page_explore_search_and_drill_down(server, page, tmp_path):
    import httpx

    lines = [f"Connection from 10.0.0.{i} closed after {i * 3} ms" for i in range(40)]
    lines += ["Disk /dev/sda1 is full", "user 7 logged in", "user 9 logged in"]
    r = httpx.post(
        server.url + "/api/v1/logs", content="\n".join(lines),
        headers={"Authorization": f"Bearer {server.admin_token}", "Content-Type": "text/plain"},
    )  # fmt: skip
    assert r.json()["accepted"] == len(lines)

    login(page, server)
    page.click("[data-nav=logs]")
    page.wait_for_url(server.url + "/logs")
    page.wait_for_selector("#log-templates table")
    first_row = page.locator("#log-templates tbody tr").first
    assert "Connection from <*> closed after <*> ms" in first_row.inner_text()
    assert "40" in first_row.inner_text()
    assert page.locator("#log-templates .badge.new").count() >= 3
    page.wait_for_selector("#templates-chart canvas", timeout=10_000)

    page.fill("#q", "disk")
    page.click("#log-search button[type=submit]")
    expect(page.locator("#log-lines .line")).to_have_count(1, timeout=10_000)
    assert "Disk /dev/sda1 is full" in page.locator("#log-lines").inner_text()

    page.click("#log-templates a:has-text('Connection from')")
    page.wait_for_selector("#template-text")
    assert page.locator("#template-text").inner_text() == "Connection from <*> closed after <*> ms"
    page.wait_for_selector("#template-chart canvas", timeout=10_000)
    assert page.locator(".lines .line").count() == 40
    page.screenshot(path=str(tmp_path / "logs.png"), full_page=True)
    assert page.errors == []


def test_metrics_page_series_scores_alarms_and_forecast(server, page, tmp_path):
    import time

    import httpx

    h = {"Authorization": f"Bearer {server.admin_token}"}
    now = time.time()
    t0 = now - 5 * 3600
    samples = [
        {"name": "orders_per_s", "value": 50 + (i % 5), "timestamp": t0 + i * 10,
         "labels": {"shop": "eu"}}
        for i in range(1700)
    ]  # fmt: skip
    samples.append({"name": "orders_per_s", "value": 900, "timestamp": t0 + 17_005,
                    "labels": {"shop": "eu"}})  # fmt: skip
    # a disk filling up: the forecast should cross 95 % within the chart's horizon
    samples += [
        {"name": "host_disk_percent", "value": 80 + i * 0.01, "timestamp": now - 3 * 3600 + i * 10,
         "labels": {"mount": "/data"}}
        for i in range(1080)
    ]  # fmt: skip
    # and one that was quiet until five minutes ago and now fills 2 % a minute: its ETA is
    # read from the last hour's pace, which is drawn too
    samples += [
        {"name": "host_disk_percent", "value": 60 + 0.01 * (i % 3) + 2 * max(0, i - 690) / 6,
         "timestamp": now - 7200 + i * 10, "labels": {"mount": "/fast"}}
        for i in range(720)
    ]  # fmt: skip
    r = httpx.post(server.url + "/api/v1/metrics", json=samples, headers=h, timeout=60)
    assert r.json()["anomalies"] >= 1

    login(page, server)
    page.click("[data-nav=metrics]")
    page.wait_for_url(server.url + "/series")
    page.wait_for_selector("#series-table table")
    row = page.locator("tr[data-series=orders_per_s]")
    assert "shop=eu" in row.inner_text()
    row.locator("a").click()
    page.wait_for_selector("#series-chart canvas", timeout=10_000)
    chart = page.locator("#series-chart")
    assert int(chart.get_attribute("data-points")) > 100
    assert int(chart.get_attribute("data-alarms")) >= 1
    # the score is drawn as p on a log scale: a normal stretch low (p above 0.1 on most
    # minutes; 1 - p itself sat near 0.45), the spike at the top (p <= 0.001)
    assert float(chart.get_attribute("data-score-median")) < 1 / 3
    assert float(chart.get_attribute("data-score-top")) == 1.0
    page.screenshot(path=str(tmp_path / "series.png"), full_page=True)

    page.goto(server.url + "/series/view?name=host_disk_percent&label=mount%3D%2Fdata")
    page.wait_for_selector("#series-chart canvas", timeout=10_000)
    assert int(page.locator("#series-chart").get_attribute("data-forecast")) > 0
    expect(page.locator("#series-eta")).to_contain_text("Forecast to reach 95")

    page.goto(server.url + "/series/view?name=host_disk_percent&label=mount%3D%2Ffast")
    page.wait_for_selector("#series-chart canvas", timeout=10_000)
    expect(page.locator("#series-eta")).to_contain_text("(at the pace of the last hour)")
    assert int(page.locator("#series-chart").get_attribute("data-recent")) > 0
    expect(page.locator("#series-chart")).to_contain_text("last hour's pace")  # the legend
    page.screenshot(path=str(tmp_path / "series-fast.png"), full_page=True)

    page.click("[data-nav=overview]")
    page.wait_for_selector("#findings .findings")
    expect(page.locator("#findings")).to_contain_text("orders_per_s")
    expect(page.locator("#findings")).to_contain_text("host_disk_percent is forecast to reach 95")
    # a clean, fast fill: the whole interval is within the horizon, so it is not just "info"
    assert page.locator("#findings li.warn .badge.sev").first.inner_text() in ("warning", "error")
    page.screenshot(path=str(tmp_path / "overview2.png"), full_page=True)
    assert page.errors == []


def test_incidents_page_detail_actions_and_silences(server, page, tmp_path):
    import time

    import httpx

    h = {"Authorization": f"Bearer {server.admin_token}"}
    now = time.time()
    alerts = [
        {"name": "HighLatency", "severity": "warning", "labels": {"service": "api", "host": "web1"},
         "annotations": {"summary": "p99 over 2 s"}, "starts_at": now - 120},
        {"name": "Errors", "severity": "critical", "labels": {"service": "api", "host": "web1"},
         "starts_at": now - 60},
    ]  # fmt: skip
    r = httpx.post(server.url + "/api/v1/alerts", json=alerts, headers=h)
    incident_id = r.json()["results"][0]["incident_id"]

    login(page, server)
    page.click("[data-nav=incidents]")
    page.wait_for_selector(f"tr[data-incident='{incident_id}']")
    row = page.locator(f"tr[data-incident='{incident_id}']")
    assert "critical" in row.inner_text() and "2/2" in row.inner_text()
    row.locator("a").click()
    page.wait_for_selector("#incident-title")
    assert "Errors" in page.locator("#incident-title").inner_text()
    assert "service=api" in page.locator("#evidence").inner_text()
    assert "group window" in page.locator("#evidence").inner_text()  # the join reason
    page.click("#btn-ack")
    expect(page.locator("#incident-status")).to_have_text("acknowledged")
    page.fill("#note-text", "rolling back deploy 42")
    page.click("text=Add note")
    expect(page.locator("#timeline")).to_contain_text("rolling back deploy 42")
    page.click("[data-feedback=true_problem]")
    expect(page.locator("#timeline")).to_contain_text("marked true_problem")
    page.screenshot(path=str(tmp_path / "incident.png"), full_page=True)

    page.click("[data-nav=silences]")
    page.fill("#matchers", 'service="api"')
    page.click("#silence-form button")
    expect(page.locator("#silences tbody tr")).to_have_count(1)
    assert "active" in page.locator("#silences tbody tr").inner_text()
    page.click("#silences button:has-text('expire')")
    expect(page.locator("#silences tbody tr").first).to_contain_text("expired")
    page.fill("#matchers", "service==oops")
    page.click("#silence-form button")
    expect(page.locator("[role=alert]")).to_be_visible()
    assert page.errors == []
    fb = httpx.get(server.url + "/api/v1/feedback", headers=h).json()["feedback"]
    assert {x["label"] for x in fb} == {"true_problem"} and len(fb) == 2


def test_runbooks_page_approve_and_run_detail(tmp_path, page):
    import httpx
    from tests.conftest import start_server

    home = tmp_path / "home"
    (home / "runbooks").mkdir(parents=True)
    (home / "runbooks" / "hello.yaml").write_text(
        "name: hello\ndescription: Say hello after approval.\ntriggers: [{manual: {}}]\n"
        "policies: {requires_approval: {role: operator, timeout_s: 60}}\n"
        "steps:\n  - id: greet\n    shell: {argv: [echo, hello from opsloop]}\n"
    )
    srv = start_server(home, tmp_path)
    try:
        h = {"Authorization": f"Bearer {srv.admin_token}"}
        run_id = httpx.post(srv.url + "/api/v1/runbooks/hello/run", headers=h).json()["id"]
        login(page, srv)
        page.click("[data-nav=runbooks]")
        expect(page.locator("#runbook-list")).to_contain_text("hello")
        page.wait_for_selector(f"[data-approve='{run_id}']")
        page.click(f"[data-approve='{run_id}']")
        page.wait_for_url(srv.url + f"/runbooks/runs/{run_id}")
        for _ in range(50):
            if page.locator("#run-status").inner_text() == "succeeded":
                break
            page.wait_for_timeout(200)
            page.reload()
        expect(page.locator("#run-status")).to_have_text("succeeded")
        expect(page.locator("#steps")).to_contain_text("hello from opsloop")
        page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
        page.click("[data-nav=runbooks]")
        page.click("[data-dry-run=hello]")
        expect(page.locator("#run-status")).to_have_text("succeeded")
        expect(page.locator("#steps")).to_contain_text("echo hello from opsloop")
        assert page.errors == []
    finally:
        srv.stop()
