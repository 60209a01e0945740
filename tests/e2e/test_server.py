"""End-to-end: the real `opsloop up` process, spoken to over HTTP."""

import json
import signal
import time

import httpx
import pytest
from tests.conftest import free_port, start_server

pytestmark = pytest.mark.e2e


def test_health_auth_and_host_metrics(server):
    assert httpx.get(server.url + "/api/health").json()["status"] == "ok"
    assert httpx.post(server.url + "/api/v1/tokens", json={}).status_code == 401
    token = server.admin_token
    assert (server.home / "admin.token").stat().st_mode & 0o777 == 0o600
    auth = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 20
    points = []
    while time.monotonic() < deadline and len(points) < 2:
        r = httpx.get(
            server.url + "/api/v1/metrics/query",
            params={"name": "host_cpu_percent", "since": "5m", "step": "1s"},
            headers=auth,
        )
        assert r.status_code == 200
        points = [p for s in r.json()["series"] for p in s["points"]]
        time.sleep(0.3)
    assert len(points) >= 2, "the host collector should have written CPU samples"
    names = httpx.get(server.url + "/api/v1/metrics/names", headers=auth).json()
    assert {"host_memory_percent", "host_disk_percent", "host_load1"} <= set(names)


def test_graceful_shutdown_on_sigterm_and_logs_are_clean(server):
    token = server.admin_token
    httpx.get(server.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0
    log = server.log.read_text()
    assert token not in log
    assert "Traceback" not in log
    json_lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(e["msg"] == "Application shutdown complete." for e in json_lines)


def test_restart_keeps_the_admin_token_and_data(tmp_path):
    home = tmp_path / "home"
    first = start_server(home, tmp_path)
    token = first.admin_token
    assert first.stop() == 0
    second = start_server(home, tmp_path)
    try:
        r = httpx.get(second.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert "created the first admin token" not in second.log.read_text()
    finally:
        second.stop()


def test_port_in_use_is_a_one_line_error(tmp_path):
    import socket
    import subprocess
    import sys

    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        cmd = [sys.executable, "-m", "opsloop.cli", "up", "--home", str(tmp_path / "h")]
        r = subprocess.run([*cmd, "--port", str(port)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert r.stderr.strip().startswith("error: port") and "in use" in r.stderr
    assert "Traceback" not in r.stderr
