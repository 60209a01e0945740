"""The wheel built from the repo installs into a clean venv and runs outside the checkout."""

import os
import subprocess
import sys
import venv
from pathlib import Path

import httpx
import pytest
from tests.conftest import start_server

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_wheel_installs_and_serves(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    wheel = next(dist.glob("opsloop-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True,
        timeout=600,
    )  # fmt: skip
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # the installed package, not the checkout, must be the one imported
    where = subprocess.run(
        [str(py), "-c", "import opsloop; print(opsloop.__file__)"],
        cwd=outside, capture_output=True, text=True, check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    ).stdout  # fmt: skip
    assert str(env_dir) in where and str(ROOT / "src") not in where

    srv = start_server(outside / "home", outside, opsloop=[str(env_dir / "bin" / "opsloop")])
    try:
        assert httpx.get(srv.url + "/api/health").json()["status"] == "ok"
        assert httpx.get(srv.url + "/login").status_code == 200
        assert httpx.get(srv.url + "/static/vendor/uPlot.iife.min.js").status_code == 200
        assert httpx.get(srv.url + "/static/js/charts.js").status_code == 200
        r = httpx.get(
            srv.url + "/api/v1/me", headers={"Authorization": f"Bearer {srv.admin_token}"}
        )
        assert r.status_code == 200  # migrations ran: the token table exists
    finally:
        assert srv.stop() == 0
