"""A PyTorch model registered with mlflow.pytorch, served through the gateway as pyfunc."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")


def _register(home: Path) -> tuple[str, object]:
    import mlflow
    import numpy as np
    from mlflow.models import infer_signature

    from opsloop.learn.mlflow_env import MlflowEnv

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    net.eval()
    example = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    with torch.no_grad():
        out = net(torch.from_numpy(example)).numpy()
    env = MlflowEnv(home)
    env.ensure()
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(env.tracking_uri)
    mlflow.set_registry_uri(env.registry_uri)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.pytorch.log_model(
                net,
                name="net",
                input_example=example,
                signature=infer_signature(example, out),
                registered_model_name="net",
                pip_requirements=["torch"],
            )
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    env.client().set_registered_model_alias("net", "champion", "1")
    return env.tracking_uri, net


def test_torch_model_served_as_pyfunc(tmp_path: Path):
    import numpy as np
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from opsloop.learn.serving import ModelGateway, ModelLoader, create_router

    uri, net = _register(tmp_path / "home")
    gateway = ModelGateway(ModelLoader(uri), poll_interval_s=0)
    app = FastAPI()
    app.include_router(create_router(gateway, mlflow_paths=True, default_model="net"))
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    try:
        with TestClient(app) as c:
            r = c.post("/invocations", json={"inputs": x.tolist()})
            assert r.status_code == 200, r.text
            np.testing.assert_allclose(r.json()["predictions"], want, rtol=1e-5, atol=1e-6)
            r = c.post("/api/v1/models/net/predict", json={"inputs": x.tolist()})
            body = r.json()
            assert (body["model"], body["version"]) == ("net", "1")
            np.testing.assert_allclose(body["predictions"], want, rtol=1e-5, atol=1e-6)
            r = c.post("/invocations", json={"inputs": [[1.0, 2.0]]})  # wrong shape
            assert r.status_code == 400
        status = gateway.status()[0]
        assert status["flavors"] == {"1": "mlflow.pytorch"}
        assert status["batching"] == {"1": False}  # a tensor signature: no row batching
    finally:
        gateway.close()
