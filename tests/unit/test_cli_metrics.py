"""`opsloop metrics forecast|import`."""

import json
import subprocess
import sys
import time
from datetime import UTC, datetime


def opsloop(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "opsloop.cli", *args], capture_output=True, text=True, timeout=120,
        cwd=cwd,
    )  # fmt: skip


def write_linear(path, n=200, start=1_800_000_000, step=3600, base=50.0, per_step=0.1):
    lines = ["timestamp,value"] + [f"{start + i * step},{base + per_step * i}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")


def test_forecast_eta_of_a_linear_series(tmp_path):
    f = tmp_path / "disk.csv"
    write_linear(f)  # 69.9 at the end, +0.1 per hour: 90 is ~201 h ahead
    r = opsloop("metrics", "forecast", str(f), "--threshold", "90", "--horizon", "30d", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    hours = (out["eta"] - out["now"]) / 3600
    assert 190 < hours < 212, hours
    assert out["eta_low"] <= out["eta"] <= out["eta_high"]
    r = opsloop("metrics", "forecast", str(f), "--threshold", "90", "--horizon", "2d", "--json")
    assert json.loads(r.stdout)["eta"] is None
    r = opsloop("metrics", "forecast", str(f), "--threshold", "90", "--horizon", "30d")
    assert r.stdout.startswith("crosses 90 at ")


def test_forecast_of_a_falling_series(tmp_path):
    f = tmp_path / "days.csv"
    write_linear(f, base=90.0, per_step=-1 / 24)  # days left, hourly: 81.7 at the end
    r = opsloop(
        "metrics", "forecast", str(f), "--threshold", "7", "--horizon", "100d", "--falling",
        "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    days = (out["eta"] - out["now"]) / 86400
    assert 74 < days < 75.5, days  # 81.71 - 7 = 74.7 days
    r = opsloop("metrics", "forecast", str(f), "--threshold", "7", "--json")
    assert json.loads(r.stdout)["eta"] == json.loads(r.stdout)["now"]  # rising: already past 7


def test_forecast_bad_input(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n1,2\nx,3\n")
    r = opsloop("metrics", "forecast", str(bad), "--threshold", "1")
    assert r.returncode == 2 and r.stderr.startswith("error:") and "bad.csv:3" in r.stderr
    r = opsloop("metrics", "forecast", str(tmp_path / "none.csv"), "--threshold", "1")
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_import_wide_and_long(tmp_path):
    wide = tmp_path / "wide.csv"
    write_linear(wide, n=50, start=int(time.time()) - 60 * 3600)
    r = opsloop("metrics", "import", str(wide), "--name", "queue_depth", "--label", "q=a",
                "--home", str(tmp_path / "h"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "imported 50 samples" in r.stdout
    long = tmp_path / "long.csv"
    iso_now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ms_now = int(time.time() * 1000)
    long.write_text(
        "timestamp,name,labels,value\n"
        f"{iso_now},temp,room=a;floor=1,21.5\n"
        f'{ms_now},temp,"{{""room"": ""b""}}",19\n'
        f"{int(time.time())},temp,,NaN\n"
    )
    r = opsloop("metrics", "import", str(long), "--home", str(tmp_path / "h"))
    assert r.returncode == 0, r.stderr
    assert "imported 2 samples, rejected 1" in r.stdout
    r = opsloop("metrics", "import", str(wide), "--home", str(tmp_path / "h"))
    assert r.returncode == 2 and "--name" in r.stderr
