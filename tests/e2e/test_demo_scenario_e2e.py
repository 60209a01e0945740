"""Issue 9 end to end: `opsloop up --demo` plays its compressed scenario (45 simulated minutes
at 60x) against the real server; every fault must be detected (with its time to detect),
correlated into an incident about the right host or model, and acted on by a runbook; then
operator verdicts on the incidents retrain opsloop's metric detector settings."""

from __future__ import annotations

import json

import pytest

from opsloop.simulate.harness import run_demo

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_demo_faults_are_detected_correlated_and_acted_on(tmp_path):
    result = run_demo(tmp_path, "demo", settle_s=10.0, timeout_s=400.0, close_loop=True)
    faults = {f["kind"]: f for f in result["faults"]}
    report = json.dumps(result["faults"], indent=1)
    assert set(faults) == {
        "latency_regression", "error_burst", "memory_leak", "heartbeat_stop", "disk_fill",
        "model_drift",
    }  # fmt: skip
    for kind, f in faults.items():
        assert f["detected"], f"{kind} not detected: {report}"
        assert f["time_to_detect_s"] is not None and f["time_to_detect_s"] <= 15 * 60, report
        assert f["correlated"], f"{kind} not in an incident about its target: {report}"
        assert f["acted_by"], f"no runbook acted on {kind}: {report}"
    assert faults["disk_fill"]["acted_by"] == ["demo-disk-cleanup"]
    assert "demo-retrain-churn" in faults["model_drift"]["acted_by"]
    # the retraining registered a new version of the model beside the champion
    versions = dict(result["churn_versions"])
    assert versions["1"] == ["champion"] and len(versions) >= 2
    # the loop closes: verdicts on the incidents train opsloop's metric detector settings,
    # which are registered, promoted over the built-in defaults and used live
    loop = result["loop"]
    # every incident gets a verdict: the faults' are true problems, the rest (false alarms:
    # 1-7 a run, none is possible) noise
    assert loop["marked"]["true_problem"] >= 1
    assert loop["marked"]["true_problem"] + loop["marked"]["noise"] == result["incidents_total"]
    assert loop["pipeline_status"] == "succeeded", loop
    assert loop["versions"] and loop["versions"][0][1] in (["champion"], ["challenger"])
    if loop["versions"][0][1] == ["champion"]:
        assert loop["live_version"] == loop["versions"][0][0]
