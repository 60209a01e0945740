"""The `opsloop` command: errors are one line, tokens print once, start-up is fast."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "opsloop.cli", *args],
        capture_output=True, text=True, cwd=cwd, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip


def assert_one_line_error(r: subprocess.CompletedProcess, needle: str) -> None:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error:") and needle in lines[0], r.stderr


def test_token_create_prints_once_and_stores_a_hash(tmp_path):
    r = run("token", "create", "--name", "grafana", "--role", "viewer", "--home", "h", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.startswith("opl_")
    assert token not in (tmp_path / "h" / "state.db").read_bytes().decode("latin-1")
    listed = run("token", "list", "--home", "h", cwd=tmp_path)
    assert "grafana" in listed.stdout and token not in listed.stdout
    token_id = token.split("_")[1]
    assert run("token", "revoke", token_id, "--home", "h", cwd=tmp_path).returncode == 0
    assert_one_line_error(
        run("token", "revoke", token_id, "--home", "h", cwd=tmp_path), "no active"
    )


def test_bad_role(tmp_path):
    assert_one_line_error(
        run("token", "create", "--name", "x", "--role", "god", "--home", "h", cwd=tmp_path),
        "unknown role",
    )


@pytest.mark.parametrize(
    ("toml", "needle"),
    [("bogus = 1\n", "unknown setting 'bogus'"), ("port = \n", "malformed TOML")],
)
def test_bad_config_file(tmp_path, toml, needle):
    (tmp_path / "opsloop.toml").write_text(toml)
    assert_one_line_error(run("up", cwd=tmp_path), needle)


def test_unwritable_home(tmp_path):
    (tmp_path / "afile").write_text("")
    assert_one_line_error(run("up", "--home", "afile/sub", cwd=tmp_path), "home")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; covered by afile case")
def test_read_only_home(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    assert_one_line_error(run("up", "--home", str(ro), cwd=tmp_path), "not writable")


def test_bad_state_url(tmp_path):
    r = run(
        "token", "list", "--home", "h", cwd=tmp_path,
        env={"OPSLOOP_STATE_URL": "postgresql+psycopg://u:pw@127.0.0.1:1/x"},
    )  # fmt: skip
    assert_one_line_error(r, "state store")
    assert ":pw@" not in r.stderr


def test_cli_starts_fast_without_heavy_imports(tmp_path):
    code = (
        "import sys, time; t=time.perf_counter(); import opsloop.cli; "
        "print(time.perf_counter()-t); "
        "print(','.join(m for m in ('fastapi','sqlalchemy','duckdb','mlflow','sklearn','numpy',"
        "'uvicorn','pydantic_settings') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    elapsed, heavy = r.stdout.splitlines()
    assert heavy == "", f"imported at start-up: {heavy}"
    assert float(elapsed) < 0.5
    t = time.perf_counter()
    assert run("--help", cwd=tmp_path).returncode == 0
    assert time.perf_counter() - t < 3  # generous: includes interpreter start on a busy CI box
