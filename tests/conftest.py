"""Shared fixtures: a temporary home, an opened platform, an API client, and state URLs."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

POSTGRES_ENV = "OPSLOOP_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's OPSLOOP_* settings or ./opsloop.toml."""
    for key in list(os.environ):
        if key.startswith("OPSLOOP_") and key != POSTGRES_ENV:
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def settings(home: Path):
    from opsloop.config import load_settings

    return load_settings(home=home)


@pytest.fixture
def platform(settings):
    from opsloop.platform import Platform

    p = Platform.open(settings)
    yield p
    p.close()


@pytest.fixture
def client(platform):
    from fastapi.testclient import TestClient

    from opsloop.api.app import create_app

    with TestClient(create_app(platform, background=False)) as c:
        yield c


@pytest.fixture
def make_token(platform):
    def make(role: str = "admin", name: str = "t") -> str:
        plaintext, _ = platform.tokens.create(name, role)
        return plaintext

    return make


def _postgres_url_with_schema(base: str) -> Iterator[str]:
    """A fresh schema in the test PostgreSQL, dropped afterwards."""
    import sqlalchemy as sa

    schema = "t_" + secrets.token_hex(6)
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The state store URL, on SQLite and (when configured) on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL state tests need {POSTGRES_ENV} (set by .ci/run)")
    yield from _postgres_url_with_schema(base)


def wait_for(predicate, timeout: float = 20.0):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running ``opsloop up`` process."""

    proc: subprocess.Popen
    url: str
    home: Path
    log: Path

    @property
    def admin_token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(5)
        return self.proc.returncode


def start_server(
    home: Path, cwd: Path, opsloop: list[str] | None = None, env: dict[str, str] | None = None
) -> Server:
    """Start ``opsloop up`` on a free port and wait until /api/health answers."""
    import httpx

    port = free_port()
    log = cwd / f"server-{port}.log"
    full_env = {**os.environ, "OPSLOOP_COLLECTOR__INTERVAL_S": "1", **(env or {})}
    cmd = (opsloop or [sys.executable, "-m", "opsloop.cli"]) + [
        "up", "--home", str(home), "--port", str(port),
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=full_env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                return Server(proc, url, home, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not answer in 30 s: {log.read_text()[-2000:]}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "home", tmp_path)
    yield srv
    srv.stop()
