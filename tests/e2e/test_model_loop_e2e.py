"""Issues 7 and 8 end to end, over HTTP against a real `opsloop up`:

the example pipeline trains and registers two versions; promoted, the model is served; requests
and labels flow; a drifted input stream becomes an incident naming the feature; a rollback
runbook restores the previous version while a load generator sees no failed request.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import start_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MODEL = "tabular-classifier"
ROLLBACK = """
name: rollback-classifier
triggers: [{manual: {}}]
steps:
  - model: {action: rollback, name: tabular-classifier, reason: "drift on the inputs"}
"""


def _rows(n: int, rng: random.Random, shift: float = 0.0) -> list[dict]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [c.replace(" ", "_") for c in data.feature_names]
    out = []
    for _ in range(n):
        row = dict(
            zip(names, (float(v) for v in data.data[rng.randrange(len(data.data))]), strict=True)
        )
        row["mean_radius"] += shift
        out.append(row)
    return out


def _run_pipeline(client: httpx.Client, params: dict) -> dict:
    r = client.post(f"/api/v1/pipelines/{MODEL}/run", json={"params": params})
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]

    def done():
        run = client.get(f"/api/v1/pipeline-runs/{run_id}")
        return run.status_code == 200 and run.json()["status"] in ("succeeded", "failed") and run

    run = wait_for(done, timeout=240).json()
    assert run["status"] == "succeeded", run.get("error")
    return run


def test_train_promote_serve_drift_rollback(tmp_path):
    home = tmp_path / "home"
    (home / "pipelines").mkdir(parents=True)
    spec = (ROOT / "examples/tabular/pipeline.yaml").read_text()
    (home / "pipelines" / "tabular.yaml").write_text(f"pythonpath: [{ROOT}]\n" + spec)
    (home / "runbooks").mkdir()
    (home / "runbooks" / "rollback.yaml").write_text(ROLLBACK)
    srv = start_server(
        home, tmp_path,
        env={"OPSLOOP_MODELS__MONITOR_WINDOW": "100", "OPSLOOP_MODELS__RELOAD_INTERVAL_S": "1",
             "OPSLOOP_COLLECTOR__ENABLED": "false"},
    )  # fmt: skip
    h = {"Authorization": f"Bearer {srv.admin_token}"}
    client = httpx.Client(base_url=srv.url, headers=h, timeout=60)
    try:
        quick = {"train": {"n_trials": 2, "cv": 3}}
        first = _run_pipeline(client, quick)
        assert first["summary"]["cached_steps"] == []
        _run_pipeline(client, {"train": {"n_trials": 3, "cv": 3}})  # a second version
        versions = client.get(f"/api/v1/models/{MODEL}").json()["versions"]
        assert [v["version"] for v in versions] == ["2", "1"]
        for v in ("1", "2"):
            r = client.post(f"/api/v1/models/{MODEL}/promote", json={"version": v, "reason": "e2e"})
            assert r.status_code == 200, r.text

        rng = random.Random(5)
        rows = _rows(60, rng)
        r = client.post(f"/api/v1/models/{MODEL}/predict", json={"records": rows[:3]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["version"] == "2" and len(body["predictions"]) == 3
        # MLflow's scoring protocol on the same model
        inv = client.post(
            f"/api/v1/models/{MODEL}/invocations", json={"dataframe_records": rows[:3]}
        )
        assert inv.status_code == 200 and inv.json()["predictions"] == body["predictions"]
        labels = []
        for i, row in enumerate(rows):
            r = client.post(f"/api/v1/models/{MODEL}/predict", json={"records": [row]},
                            headers={"X-Request-ID": f"req-{i}"})  # fmt: skip
            assert r.status_code == 200
            labels.append({"request_id": f"req-{i}", "label": int(r.json()["predictions"][0])})
        r = client.post(f"/api/v1/models/{MODEL}/labels", json={"labels": labels})
        assert r.status_code < 300, r.text

        # a drifted stream: mean radius shifted by about five standard deviations
        for row in _rows(250, rng, shift=18.0):
            assert (
                client.post(f"/api/v1/models/{MODEL}/predict", json={"records": [row]}).status_code
                == 200
            )

        def drift_incident():
            for inc in client.get("/api/v1/incidents").json()["incidents"]:
                text = str(inc)
                if "mean_radius" in text and "model_drift" in text:
                    return inc
            return None

        incident = wait_for(drift_incident, timeout=60)
        assert MODEL in str(incident)

        # rollback while a load generator runs: no failed request
        failures: list[str] = []
        served: set[str] = set()
        stop = threading.Event()

        def load():
            with httpx.Client(base_url=srv.url, headers=h, timeout=30) as c:
                while not stop.is_set():
                    r = c.post(f"/api/v1/models/{MODEL}/predict", json={"records": rows[:1]})
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                    else:
                        served.add(r.json()["version"])

        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        r = client.post("/api/v1/runbooks/rollback-classifier/run", json={})
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        run = wait_for(
            lambda: (
                (x := client.get(f"/api/v1/runbook-runs/{run_id}").json())["status"]
                in ("succeeded", "failed")
                and x
            ),
            timeout=60,
        )
        assert run["status"] == "succeeded", run
        wait_for(lambda: "1" in served, timeout=30)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(30)
        assert failures == []
        assert served == {"1", "2"}
        model = client.get(f"/api/v1/models/{MODEL}").json()
        assert model["aliases"]["champion"] == "1"
        audit_ok = (
            any(
                e["action"] == "model.rollback"
                for e in client.get("/api/v1/audit").json()["events"]
            )
            if client.get("/api/v1/audit").status_code == 200
            else True
        )
        assert audit_ok
    finally:
        client.close()
        assert srv.stop() == 0
        shutil.rmtree(home / "mlartifacts", ignore_errors=True)
