"""The standalone gateway: serve_models with two uvicorn workers, a token, live alias moves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.conftest import free_port, wait_for
from tests.learn.test_serving import COLUMNS, expected, register_models

from opsloop.learn.serving.standalone import build_config
from opsloop.observe.prom_text import parse

pytestmark = pytest.mark.e2e
TOKEN = "s3rving-token-for-tests"


def test_config_needs_a_token_unless_no_auth(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPSLOOP_SERVING_TOKEN", raising=False)
    with pytest.raises(ValueError, match="--no-auth"):
        build_config("sqlite:///x.db", ["m"])
    assert build_config("sqlite:///x.db", ["m"], no_auth=True)["token"] is None
    monkeypatch.setenv("OPSLOOP_SERVING_TOKEN", "abc")
    config = build_config("sqlite:///x.db", ["m"], policies={"m": {"canary_percent": 10}})
    assert config["token"] == "abc"
    assert config["policies"]["m"]["canary_percent"] == 10
    with pytest.raises(ValueError, match="unknown model policy"):
        build_config("sqlite:///x.db", ["m"], no_auth=True, policies={"m": {"nope": 1}})


def _metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    return sum(
        s.value
        for s in parse(text, strict=True).samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_serve_models_with_workers(tmp_path: Path):
    store = register_models(tmp_path / "home")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    code = (
        "from opsloop.learn.serving import serve_models; "
        f"serve_models({store.env.tracking_uri!r}, port={port}, workers=2, models=['clf'], "
        "poll_interval_s=0.3, log_level='warning')"
    )
    log = (tmp_path / "serve.log").open("wb")
    env = {**os.environ, "OPSLOOP_SERVING_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=log)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    rows = store.rows[:4]
    body = {"dataframe_split": {"columns": COLUMNS, "data": rows}}
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError((tmp_path / "serve.log").read_text()[-3000:])
            try:
                return httpx.get(url + "/ping", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60)
        assert httpx.post(url + "/invocations", json=body).status_code == 401
        bad = httpx.post(url + "/invocations", json=body, headers={"Authorization": "Bearer x"})
        assert bad.status_code == 401
        with httpx.Client(headers=auth, timeout=10) as c:
            for _ in range(20):  # several connections reach both workers
                r = c.post(url + "/invocations", json=body, headers={"Connection": "close"})
                assert r.json() == {"predictions": expected(store, "a", rows)}
            r = c.post(url + "/models/clf/invocations", json=body)
            assert r.json() == {"predictions": expected(store, "a", rows)}
            r = c.post(url + "/api/v1/models/clf/predict", json={"columns": COLUMNS, "data": rows})
            assert (r.json()["version"], r.json()["predictions"]) == (
                "1",
                expected(store, "a", rows),
            )

            # counts of both workers add up on any scrape
            wait_for(
                lambda: _metric(url, "opsloop_serving_requests_total", model="clf") == 22,
                timeout=10,
            )

            # promote v2: every worker picks it up by polling
            store.registry().promote("clf", "2", actor="test")
            want = expected(store, "b", rows)

            def all_new() -> bool:
                answers = [
                    c.post(url + "/invocations", json=body, headers={"Connection": "close"})
                    for _ in range(10)
                ]
                assert all(a.status_code == 200 for a in answers)
                return all(a.json()["predictions"] == want for a in answers)

            wait_for(all_new, timeout=15)
            assert c.get(url + "/api/v1/serving/models").json()["models"][0]["aliases"] == {
                "champion": "2"
            }
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
