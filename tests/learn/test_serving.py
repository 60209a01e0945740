"""Model gateway: protocols, hot swap, rollback, canary, shadow, limits, batching, metrics."""

from __future__ import annotations

import asyncio
import doctest
import importlib
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException, Request

from opsloop.learn.mlflow_env import MlflowEnv
from opsloop.learn.registry import ModelRegistry
from opsloop.learn.serving import (
    ModelGateway,
    ModelLoader,
    ModelPolicy,
    ServingMetrics,
    create_router,
)
from opsloop.learn.serving.metrics import MetricsRegistry
from opsloop.observe.prom_text import parse

COLUMNS = [f"f{i}" for i in range(6)]


@dataclass
class Store:
    """A temporary MLflow store with registered models."""

    env: MlflowEnv
    models: dict[str, Any]  # sklearn estimators by key ("a", "b")
    rows: list[list[float]]

    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.env)


def _slow_model(delay: float) -> Any:
    """A pyfunc model that sleeps, then answers ``2 * f0`` per row (pickled by value)."""
    import mlflow.pyfunc

    class Slow(mlflow.pyfunc.PythonModel):
        _skip_type_hint_validation = True  # no type hints: the signature is given

        def predict(self, context, model_input, params=None):
            time.sleep(delay)
            return (model_input["f0"] * 2.0).to_numpy()

    return Slow()


def register_models(home: Path) -> Store:
    """Log two classifiers and a slow model; register them under several names.

    ``clf``: v1 = a, v2 = b, champion 1, challenger 2. ``swap``: v1 = a, v2 = b, champion 1.
    ``slow``: v1, champion 1 (sleeps 0.2 s per predict). ``bare``: v1, no alias.
    """
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    env = MlflowEnv(home)
    env.ensure()
    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(300, len(COLUMNS))), columns=COLUMNS)
    y = (x["f0"] + 0.5 * x["f1"] > 0).astype(int)
    models = {"a": LogisticRegression().fit(x, y), "b": LogisticRegression().fit(x, 1 - y)}
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(env.tracking_uri)
    mlflow.set_registry_uri(env.registry_uri)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            signature = infer_signature(x, y)
            uris = {
                key: mlflow.sklearn.log_model(
                    m, name=f"model-{key}", signature=signature, pip_requirements=["scikit-learn"]
                ).model_uri
                for key, m in models.items()
            }
            slow_uri = mlflow.pyfunc.log_model(
                name="slow",
                python_model=_slow_model(0.2),
                signature=infer_signature(x, x["f0"].to_numpy()),
                pip_requirements=["mlflow"],
            ).model_uri
            client = env.client()
            for name, keys in (("clf", "ab"), ("swap", "ab"), ("bare", "a")):
                for key in keys:
                    mlflow.register_model(uris[key], name)
            mlflow.register_model(slow_uri, "slow")
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    client.set_registered_model_alias("clf", "champion", "1")
    client.set_registered_model_alias("clf", "challenger", "2")
    client.set_registered_model_alias("swap", "champion", "1")
    client.set_registered_model_alias("slow", "champion", "1")
    return Store(env, models, x.to_numpy().round(4).tolist())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return register_models(tmp_path_factory.mktemp("mlflow") / "home")


def make_gateway(store: Store, **kwargs: Any) -> ModelGateway:
    kwargs.setdefault("poll_interval_s", 0)
    return ModelGateway(ModelLoader.from_env(store.env), **kwargs)


def make_app(gateway: ModelGateway) -> Any:
    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(create_router(gateway, mlflow_paths=True, default_model="clf"))
    return app


@pytest.fixture
def gateway(store: Store):
    gw = make_gateway(store)
    yield gw
    gw.close()


@pytest.fixture
def client(gateway: ModelGateway):
    from fastapi.testclient import TestClient

    with TestClient(make_app(gateway)) as c:
        yield c


def expected(store: Store, key: str, rows: list[list[float]]) -> list[int]:
    import pandas as pd

    return store.models[key].predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()


async def run_clients(app: Any, make_request: Any, count: int) -> list[Any]:
    """Send ``count`` requests at once through the ASGI app; the responses in order."""
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=30) as c:
        return await asyncio.gather(*(make_request(c, i) for i in range(count)))


def need_key(request: Request) -> None:
    """An auth dependency for the router test."""
    if request.headers.get("x-key") != "k":
        raise HTTPException(401)


def sender(path: str, body: Any) -> Any:
    """A request maker for :func:`run_clients`; ``body`` is JSON or a function of the index."""

    def make(c: Any, i: int) -> Any:
        return c.post(path, json=body(i) if callable(body) else body)

    return make


# -- protocols ---------------------------------------------------------------------------------
def test_predict_forms_answer_like_the_model(store: Store, client: Any):
    rows = store.rows[:5]
    want = expected(store, "a", rows)
    records = [dict(zip(COLUMNS, r, strict=True)) for r in rows]

    r = client.post("/api/v1/models/clf/predict", json={"records": records})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == want
    assert (body["model"], body["version"], body["variant"]) == ("clf", "1", "champion")
    assert body["request_id"] == r.headers["x-request-id"]

    shuffled = COLUMNS[::-1]
    r = client.post(
        "/api/v1/models/clf/predict",
        json={"columns": shuffled, "data": [row[::-1] for row in rows]},
        headers={"X-Request-ID": "req-42"},
    )
    assert r.json()["predictions"] == want
    assert r.json()["request_id"] == "req-42"

    r = client.post("/api/v1/models/clf/predict", json={"inputs": records})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == want


INVOCATION_PATHS = ["/invocations", "/models/clf/invocations", "/api/v1/models/clf/invocations"]


@pytest.mark.parametrize("path", INVOCATION_PATHS)
def test_invocations_match_mlflow_scoring_protocol(store: Store, client: Any, path: str):
    rows = store.rows[5:9]
    want = {"predictions": expected(store, "a", rows)}
    records = [dict(zip(COLUMNS, r, strict=True)) for r in rows]
    bodies = [
        {"dataframe_split": {"columns": COLUMNS, "data": rows}},
        {"dataframe_split": {"columns": COLUMNS, "data": rows, "index": [7, 8, 9, 10]}},
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": {c: [r[i] for r in rows] for i, c in enumerate(COLUMNS)}},
    ]
    for body in bodies:
        r = client.post(path, json=body)
        assert r.status_code == 200, (body, r.text)
        assert r.json() == want, body
    csv = ",".join(COLUMNS) + "\n" + "\n".join(",".join(map(str, r)) for r in rows)
    r = client.post(path, content=csv, headers={"content-type": "text/csv"})
    assert r.json() == want


def test_invocations_errors_like_mlflow(client: Any):
    r = client.post("/invocations", json={"dataframe_split": {"columns": ["f0"], "data": [[1]]}})
    assert r.status_code == 400
    assert "missing inputs" in r.json()["message"]
    r = client.post("/invocations", json={"records": []})
    assert r.status_code == 400
    assert "exactly one of the input fields" in r.json()["message"]
    r = client.post("/invocations", content="a,b", headers={"content-type": "text/html"})
    assert r.status_code == 415


def test_bad_bodies_get_clear_errors(client: Any):
    r = client.post("/api/v1/models/clf/predict", content=b"{nope")
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = client.post("/api/v1/models/clf/predict", json={"columns": COLUMNS})
    assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST"
    r = client.post("/api/v1/models/clf/predict", json={"records": [], "inputs": 1})
    assert r.status_code == 400 and "exactly one input" in r.json()["message"]
    bad = [dict.fromkeys(COLUMNS, 0.5)] * 2
    bad[1] = {**bad[1], "f3": "not a number"}
    r = client.post("/api/v1/models/clf/predict", json={"records": bad})
    assert r.status_code == 400
    body = r.json()
    assert body["model"] == "clf" and body["version"] == "1" and body["request_id"]


def test_unknown_model_404_and_unset_alias_503(client: Any):
    row = {"columns": COLUMNS, "data": [[0.0] * 6]}
    r = client.post("/api/v1/models/nosuch/predict", json=row)
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    r = client.post("/api/v1/models/bare/predict", json=row)
    assert r.status_code == 503
    assert r.json()["error_code"] == "MODEL_UNAVAILABLE"
    assert "champion" in r.json()["message"]
    r = client.post("/api/v1/models/bare/predict?version=1", json=row)
    assert r.status_code == 200 and r.json()["variant"] == "pinned"
    r = client.post("/api/v1/models/bare/predict?version=9", json=row)
    assert r.status_code == 404
    r = client.post("/api/v1/models/clf/predict?alias=challenger", json=row)
    assert (r.json()["version"], r.json()["variant"]) == ("2", "challenger")


# -- hot swap and rollback ---------------------------------------------------------------------
def test_hot_swap_while_requests_run_loses_none(store: Store):
    gw = make_gateway(store, poll_interval_s=0.05)
    gw.serve("swap")
    gw.start()
    app = make_app(gw)
    registry = store.registry()
    rows = store.rows[:3]
    want = {"1": expected(store, "a", rows), "2": expected(store, "b", rows)}
    seen: list[tuple[int, str | None, Any]] = []

    async def scenario() -> None:
        import httpx

        transport = httpx.ASGITransport(app=app)
        stop = asyncio.Event()
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:

            async def hammer() -> None:
                while not stop.is_set():
                    r = await c.post(
                        "/api/v1/models/swap/predict", json={"columns": COLUMNS, "data": rows}
                    )
                    body = r.json()
                    seen.append((r.status_code, body.get("version"), body.get("predictions")))

            tasks = [asyncio.create_task(hammer()) for _ in range(6)]
            await asyncio.sleep(0.3)
            await asyncio.to_thread(registry.promote, "swap", "2", actor="test")
            deadline = time.monotonic() + 10
            while not any(v == "2" for _, v, _ in seen[-3:]):
                assert time.monotonic() < deadline, "the swap never happened"
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*tasks)

    try:
        asyncio.run(scenario())
        assert len(seen) > 20
        assert all(code == 200 for code, _, _ in seen), {c for c, _, _ in seen}
        assert {v for _, v, _ in seen} == {"1", "2"}
        assert all(preds == want[v] for _, v, preds in seen)
        assert {v for _, v, _ in seen[-6:]} == {"2"}
        assert gw.metrics.swaps.value(("swap", "champion")) == 1
        live = gw.metrics.live
        assert live.value(("swap", "champion", "1")) == 0
        assert live.value(("swap", "champion", "2")) == 1

        # rollback: the alias moves back, the old version is still loaded and serves at once
        registry.rollback("swap", actor="test", reason="bad canary")
        assert gw.refresh("swap") == {"swap": {"champion": "1"}}
        body = {"columns": COLUMNS, "data": rows}
        r = asyncio.run(run_clients(app, sender("/api/v1/models/swap/predict", body), 4))
        assert {x.json()["version"] for x in r} == {"1"}
        assert gw.metrics.loads.value(("swap", "1", "ok")) == 1  # not loaded a second time
        assert gw.metrics.swaps.value(("swap", "champion")) == 2
        assert gw.metrics.live.value(("swap", "champion", "1")) == 1
        live_now = {
            (x.labels["alias"], x.labels["version"])
            for x in parse(gw.metrics.render()).samples
            if x.name == "opsloop_serving_live_version" and x.labels["model"] == "swap"
        }
        assert live_now == {("champion", "1")}
    finally:
        gw.close()
        store.env.client().set_registered_model_alias("swap", "champion", "1")


@pytest.mark.parametrize("poll", [0, 60], ids=["no-poller", "idle-poller"])
def test_registry_changes_swap_at_once(store: Store, poll: float):
    from tests.conftest import wait_for

    gw = make_gateway(store, poll_interval_s=poll)
    gw.serve("swap")
    gw.start()
    registry = ModelRegistry(store.env, on_change=lambda move: gw.refresh_soon(move.model))
    try:
        assert gw.status()[0]["aliases"] == {"champion": "1"}
        registry.promote("swap", "2", actor="test")
        wait_for(lambda: gw.status()[0]["aliases"] == {"champion": "2"}, timeout=10)
        registry.rollback("swap", actor="test")
        wait_for(lambda: gw.status()[0]["aliases"] == {"champion": "1"}, timeout=10)
    finally:
        gw.close()
        store.env.client().set_registered_model_alias("swap", "champion", "1")


def test_eviction_keeps_max_versions(store: Store):
    gw = make_gateway(store, max_versions=1)
    try:
        gw.refresh("clf")
        row = {"columns": COLUMNS, "data": [store.rows[0]]}
        from fastapi.testclient import TestClient

        with TestClient(make_app(gw)) as c:
            assert c.post("/api/v1/models/clf/predict?version=2", json=row).status_code == 200
        gw.refresh("clf")
        assert gw.status()[0]["loaded_versions"] == ["1"]
        assert gw.loader.cached("clf", "2") is None
    finally:
        gw.close()


# -- traffic policies --------------------------------------------------------------------------
def test_canary_split_is_close_to_the_percentage(store: Store):
    gw = make_gateway(store, policies={"clf": ModelPolicy(canary_percent=30)}, seed=11)
    try:
        n = 400
        row = {"columns": COLUMNS, "data": [store.rows[0]]}
        app = make_app(gw)
        out = []
        for _ in range(4):  # 100 at a time, under the concurrency limit
            out += asyncio.run(
                run_clients(app, lambda c, i: c.post("/api/v1/models/clf/predict", json=row), 100)
            )
        assert all(r.status_code == 200 for r in out)
        canary = [r.json() for r in out if r.json()["variant"] == "canary"]
        assert 0.23 < len(canary) / n < 0.37
        assert {r["version"] for r in canary} == {"2"}
        assert {r.json()["version"] for r in out if r.json()["variant"] == "champion"} == {"1"}
    finally:
        gw.close()


def test_canary_without_challenger_goes_to_champion(store: Store):
    gw = make_gateway(store, policies={"swap": ModelPolicy(canary_percent=100)})
    try:
        from fastapi.testclient import TestClient

        with TestClient(make_app(gw)) as c:
            r = c.post("/api/v1/models/swap/predict", json={"records": [dict.fromkeys(COLUMNS, 1)]})
        assert r.status_code == 200
        assert (r.json()["variant"], r.json()["version"]) == ("champion", "1")
    finally:
        gw.close()


def test_shadow_answers_with_champion_and_logs_both(store: Store):
    logged: list[tuple] = []
    gw = make_gateway(
        store,
        policies={"clf": ModelPolicy(shadow=True)},
        on_prediction=lambda *args: logged.append(args),
    )
    rows = store.rows[10:13]

    async def scenario() -> list[Any]:
        import httpx

        transport = httpx.ASGITransport(app=make_app(gw))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            answers = [
                await c.post(
                    "/api/v1/models/clf/predict",
                    json={"columns": COLUMNS, "data": rows},
                    headers={"X-Request-ID": f"shadow-{i}"},
                )
                for i in range(3)
            ]
            await gw.drain_shadows()
            return answers

    try:
        answers = asyncio.run(scenario())
        assert {(a.json()["version"], a.json()["variant"]) for a in answers} == {("1", "champion")}
        assert all(a.json()["predictions"] == expected(store, "a", rows) for a in answers)
        assert gw.prediction_log.flush()
        by = {(entry[2], entry[6]): entry for entry in logged}
        for i in range(3):
            champ, shadow = by[(f"shadow-{i}", "champion")], by[(f"shadow-{i}", "shadow")]
            assert (champ[0], champ[1], shadow[1]) == ("clf", "1", "2")
            assert champ[3] == [dict(zip(COLUMNS, r, strict=True)) for r in rows]
            assert champ[4] == expected(store, "a", rows)
            assert shadow[4] == expected(store, "b", rows)
            assert champ[5] > 0 and shadow[5] > 0
    finally:
        gw.close()


def test_prediction_log_sampling_and_labels(store: Store):
    logged: list[tuple] = []
    labels: list[tuple] = []
    gw = make_gateway(
        store,
        policies={"clf": ModelPolicy(log_sample_rate=0.5), "swap": ModelPolicy(log_sample_rate=0)},
        on_prediction=lambda *args: logged.append(args),
        on_label=lambda *args: labels.append(args),
        seed=5,
    )
    try:
        from fastapi.testclient import TestClient

        row = {"columns": COLUMNS, "data": [store.rows[0]]}
        with TestClient(make_app(gw)) as c:
            answers = [c.post("/api/v1/models/clf/predict", json=row) for _ in range(200)]
            ids = [a.json()["request_id"] for a in answers]
            for _ in range(20):
                assert c.post("/api/v1/models/swap/predict", json=row).status_code == 200
            pairs = [{"request_id": ids[0], "label": 1}, {"request_id": ids[1], "label": 0}]
            r = c.post("/api/v1/models/clf/labels", json={"labels": pairs})
            assert r.json() == {"model": "clf", "accepted": 2}
            r = c.post("/api/v1/models/clf/labels", json={"request_id": ids[2], "label": 1})
            assert r.json()["accepted"] == 1
            bad = c.post("/api/v1/models/clf/labels", json={"labels": [{"id": "x"}]})
            assert bad.status_code == 400
        assert gw.prediction_log.flush()
        assert {e[0] for e in logged} == {"clf"}
        assert 70 < len(logged) < 130  # about half of 200
        assert set(e[2] for e in logged) <= set(ids)
        assert labels == [("clf", ids[0], 1), ("clf", ids[1], 0), ("clf", ids[2], 1)]
    finally:
        gw.close()


def test_labels_without_sink_answer_501(client: Any):
    r = client.post("/api/v1/models/clf/labels", json={"request_id": "x", "label": 1})
    assert r.status_code == 501 and r.json()["error_code"] == "NOT_IMPLEMENTED"


def test_concurrency_limit_answers_429(store: Store):
    policy = ModelPolicy(max_concurrency=2, batching=False)
    gw = make_gateway(store, policies={"slow": policy})
    gw.refresh("slow")
    row = {"columns": COLUMNS, "data": [store.rows[0]]}
    try:
        out = asyncio.run(
            run_clients(
                make_app(gw), lambda c, i: c.post("/api/v1/models/slow/predict", json=row), 6
            )
        )
        codes = sorted(r.status_code for r in out)
        assert codes == [200, 200, 429, 429, 429, 429]
        refused = next(r for r in out if r.status_code == 429)
        assert refused.json()["error_code"] == "MODEL_OVERLOADED"
        assert refused.headers["retry-after"] == "1"
        assert gw.metrics.errors.value(("slow", "1", "MODEL_OVERLOADED")) == 4
    finally:
        gw.close()


def test_slow_model_answers_504(store: Store):
    gw = make_gateway(store, policies={"slow": ModelPolicy(timeout_s=0.05)})
    gw.refresh("slow")
    try:
        from fastapi.testclient import TestClient

        with TestClient(make_app(gw)) as c:
            record = dict.fromkeys(COLUMNS, 1.0)
            r = c.post("/api/v1/models/slow/predict", json={"records": [record]})
        assert r.status_code == 504
        body = r.json()
        assert body["error_code"] == "PREDICTION_TIMEOUT"
        assert (body["model"], body["version"]) == ("slow", "1")
    finally:
        gw.close()


# -- batching ----------------------------------------------------------------------------------
def test_batching_batches_concurrent_requests(store: Store):
    gw = make_gateway(store, policies={"slow": ModelPolicy(max_batch_size=64)})
    gw.refresh("slow")
    n = 16

    def request(c: Any, i: int) -> Any:
        rows = [[float(i), *store.rows[i][1:]], [float(i) + 0.5, *store.rows[i][1:]]]
        return c.post("/api/v1/models/slow/predict", json={"columns": COLUMNS, "data": rows})

    try:
        started = time.perf_counter()
        out = asyncio.run(run_clients(make_app(gw), request, n))
        elapsed = time.perf_counter() - started
        # each request gets its own rows back (2 * f0), though they shared predict calls
        assert [r.json()["predictions"] for r in out] == [[2.0 * i, 2.0 * i + 1] for i in range(n)]
        batches = gw.metrics.batch_requests.count(("slow", "1"))
        assert gw.metrics.batch_requests.total(("slow", "1")) == n
        assert gw.metrics.batch_rows.total(("slow", "1")) == 2 * n
        assert batches < n / 2, batches  # 0.2 s per predict: one call per request would be 3.2 s
        assert elapsed < 0.2 * n / 2
        assert gw.status()[0]["batching"] == {"1": True}
    finally:
        gw.close()


def test_batching_can_be_turned_off(store: Store):
    gw = make_gateway(store, policies={"clf": ModelPolicy(batching=False)})
    try:
        send = sender(
            "/api/v1/models/clf/predict", lambda i: {"columns": COLUMNS, "data": [store.rows[i]]}
        )
        out = asyncio.run(run_clients(make_app(gw), send, 8))
        assert [r.json()["predictions"][0] for r in out] == expected(store, "a", store.rows[:8])
        assert gw.status()[0]["batching"] == {"1": False}
        assert gw.metrics.batch_requests.count(("clf", "1")) == 0
    finally:
        gw.close()


def test_a_bad_request_fails_alone_in_a_batch(store: Store):
    gw = make_gateway(store, policies={"slow": ModelPolicy(max_wait_ms=50)})
    gw.refresh("slow")

    def request(c: Any, i: int) -> Any:
        value: Any = "oops" if i == 3 else float(i)
        rows = [[value, *store.rows[i][1:]]]
        return c.post("/api/v1/models/slow/predict", json={"columns": COLUMNS, "data": rows})

    try:
        out = asyncio.run(run_clients(make_app(gw), request, 8))
        assert [r.status_code for r in out] == [200, 200, 200, 400, 200, 200, 200, 200]
        assert out[5].json()["predictions"] == [10.0]
    finally:
        gw.close()


# -- metrics -----------------------------------------------------------------------------------
def test_metrics_exposition(store: Store, client: Any):
    row = {"columns": COLUMNS, "data": [store.rows[0]]}
    for _ in range(3):
        client.post("/api/v1/models/clf/predict", json=row)
    client.post("/api/v1/models/nosuch/predict", json=row)
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    result = parse(r.text, strict=True)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in result.samples}
    ok = (("code", "200"), ("model", "clf"), ("variant", "champion"), ("version", "1"))
    assert samples[("opsloop_serving_requests_total", ok)] == 3
    miss = (("code", "404"), ("model", "(unknown)"), ("variant", "champion"), ("version", ""))
    assert samples[("opsloop_serving_requests_total", miss)] == 1
    lat = (("model", "clf"), ("variant", "champion"), ("version", "1"))
    assert samples[("opsloop_serving_request_duration_seconds_count", lat)] == 3
    inf = (("le", "+Inf"), *lat)
    assert samples[("opsloop_serving_request_duration_seconds_bucket", inf)] == 3
    assert samples[("opsloop_serving_rows_total", (("model", "clf"), ("version", "1")))] == 3
    live = (("alias", "champion"), ("model", "clf"), ("version", "1"))
    assert samples[("opsloop_serving_live_version", live)] == 1
    types = {f.name: f.type for f in result.families}
    assert types["opsloop_serving_batch_rows"] == "histogram"


def test_metrics_add_up_worker_snapshots(tmp_path: Path):
    shared = tmp_path / "share"
    shared.mkdir()
    ours = ServingMetrics(MetricsRegistry(shared))
    ours.requests.inc(("m", "1", "champion", "200"), 2)
    ours.latency.observe(("m", "1", "champion"), 0.003)
    ours.in_flight.inc(("m",), 1)
    ours.registry.publish()
    # another worker wrote its snapshot (pid 1 is alive: its gauges count as well)
    other = ServingMetrics(MetricsRegistry())
    other.requests.inc(("m", "1", "champion", "200"), 5)
    other.latency.observe(("m", "1", "champion"), 0.2)
    other.in_flight.inc(("m",), 3)
    import json

    (shared / "metrics-1.json").write_text(
        json.dumps({"pid": 1, "values": other.registry.snapshot()})
    )
    dead = {"pid": 2**22 + 12345, "values": other.registry.snapshot()}
    (shared / "metrics-dead.json").write_text(json.dumps(dead))
    text = ours.render()
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in parse(text).samples}
    req = (("code", "200"), ("model", "m"), ("variant", "champion"), ("version", "1"))
    assert values[("opsloop_serving_requests_total", req)] == 12  # 2 + 5 + 5 (dead keeps counts)
    lat = (("model", "m"), ("variant", "champion"), ("version", "1"))
    assert values[("opsloop_serving_request_duration_seconds_count", lat)] == 3
    assert values[("opsloop_serving_in_flight_requests", (("model", "m"),))] == 4  # dead: dropped


def test_status_route(store: Store, client: Any):
    client.post("/api/v1/models/clf/predict", json={"columns": COLUMNS, "data": [store.rows[0]]})
    r = client.get("/api/v1/serving/models")
    model = next(m for m in r.json()["models"] if m["name"] == "clf")
    assert model["aliases"] == {"champion": "1"}
    assert model["flavors"] == {"1": "mlflow.sklearn"}
    r = client.post("/api/v1/serving/models/clf/refresh")
    assert r.status_code == 200 and r.json()["aliases"] == {"champion": "1"}
    assert client.post("/api/v1/serving/models/nosuch/refresh").status_code == 404


def test_router_takes_auth_dependencies(store: Store, gateway: ModelGateway):
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI()
    app.include_router(create_router(lambda: gateway, predict=[Depends(need_key)]))
    row = {"columns": COLUMNS, "data": [store.rows[0]]}
    with TestClient(app) as c:
        assert c.post("/api/v1/models/clf/predict", json=row).status_code == 401
        assert c.post("/api/v1/models/clf/invocations", json=row).status_code == 401
        ok = c.post("/api/v1/models/clf/predict", json=row, headers={"x-key": "k"})
        assert ok.status_code == 200
        assert c.post("/invocations", json=row).status_code == 404  # no default model here


def test_policy_validation():
    with pytest.raises(ValueError, match="canary_percent"):
        ModelPolicy(canary_percent=120)
    with pytest.raises(ValueError, match="unknown model policy"):
        ModelPolicy.from_dict({"canary": 5})
    assert ModelPolicy.from_dict({"shadow": True}).uses_challenger


@pytest.mark.parametrize("module", ["errors", "payload", "policy", "metrics"], ids=lambda m: m)
def test_doctests(module: str):
    mod = importlib.import_module(f"opsloop.learn.serving.{module}")
    result = doctest.testmod(mod)
    assert result.attempted > 0 and result.failed == 0


def test_gateway_threads_stop_on_close(store: Store):
    gw = make_gateway(store, poll_interval_s=0.05, on_prediction=lambda *a: None)
    gw.serve("clf")
    gw.start()
    assert any(t.name == "opsloop-model-poller" for t in threading.enumerate())
    gw.close()
    time.sleep(0.1)
    assert not any(t.name == "opsloop-model-poller" for t in threading.enumerate())


def test_counters_only_go_up_gauges_both_ways():
    reg = MetricsRegistry()
    c = reg.counter("x_total", "x", ("a",))
    c.inc(("1",), 2.0)
    with pytest.raises(ValueError):
        c.inc(("1",), -1.0)
    assert c.value(("1",)) == 2.0
    g = reg.gauge("y", "y")
    g.inc()
    g.inc((), -3.0)
    assert g.value() == -2.0
