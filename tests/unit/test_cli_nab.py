"""`opsloop bench nab` on a small made-up NAB-style corpus (tests never read ../shared)."""

import csv
import json
import math
import subprocess
import sys
from datetime import datetime, timedelta


def opsloop(*args):
    return subprocess.run(
        [sys.executable, "-m", "opsloop.cli", *args], capture_output=True, text=True, timeout=300
    )


def make_corpus(root, with_labels=True):
    start = datetime(2024, 1, 1)
    windows = {}
    for cat, name, spike_at in (("catA", "one.csv", 600), ("catB", "two.csv", 700)):
        (root / "data" / cat).mkdir(parents=True)
        with (root / "data" / cat / name).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["timestamp", "value"])
            for i in range(1000):
                value = 10 + math.sin(i / 20) + (40 if spike_at <= i < spike_at + 3 else 0)
                w.writerow(
                    [(start + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S"), value]
                )
        lo = (start + timedelta(minutes=5 * (spike_at - 20))).strftime("%Y-%m-%d %H:%M:%S.%f")
        hi = (start + timedelta(minutes=5 * (spike_at + 20))).strftime("%Y-%m-%d %H:%M:%S.%f")
        windows[f"{cat}/{name}"] = [[lo, hi]]
    if with_labels:
        (root / "labels").mkdir()
        (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))


def test_detect_write_results_and_score(tmp_path):
    make_corpus(tmp_path / "nab")
    out = tmp_path / "results"
    r = opsloop("bench", "nab", "--data", str(tmp_path / "nab"), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(last) == {
        "standard",
        "reward_low_FP_rate",
        "reward_low_FN_rate",
        "points_per_second",
    }
    assert last["standard"] > 50  # two obvious spikes
    rows = list(csv.DictReader((out / "opsloop" / "catA" / "opsloop_one.csv").open()))
    assert len(rows) == 1000 and set(rows[0]) == {"timestamp", "value", "anomaly_score", "label"}
    assert all(0 <= float(x["anomaly_score"]) <= 1 for x in rows)
    assert sum(int(x["label"]) for x in rows) == 41
    # scoring the written folder again gives the same numbers
    again = opsloop("bench", "nab", "--data", str(tmp_path / "nab"), "--score",
                    str(out / "opsloop"), "--json")  # fmt: skip
    assert again.returncode == 0, again.stderr
    rescored = json.loads(again.stdout.strip().splitlines()[-1])
    assert abs(rescored["standard"] - last["standard"]) < 0.01


def test_score_a_perfect_and_a_null_detector(tmp_path):
    make_corpus(tmp_path / "nab")
    for det in ("perfect", "null"):
        for cat, name, first in (("catA", "one.csv", 580), ("catB", "two.csv", 680)):
            folder = tmp_path / "res" / det / cat
            folder.mkdir(parents=True)
            with (folder / f"{det}_{name}").open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["timestamp", "anomaly_score"])
                for i in range(1000):
                    w.writerow([i, 1.0 if det == "perfect" and i == first else 0.0])
    r = opsloop("bench", "nab", "--data", str(tmp_path / "nab"), "--score", str(tmp_path / "res"))
    assert r.returncode == 0, r.stderr
    assert "perfect: standard 100.00" in r.stdout
    assert "null: standard 0.00" in r.stdout


def test_unlabelled_corpus_and_bad_input(tmp_path):
    make_corpus(tmp_path / "nab", with_labels=False)
    r = opsloop("bench", "nab", "--data", str(tmp_path / "nab"), "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert "standard" not in r.stdout
    rows = list(csv.DictReader((tmp_path / "o" / "opsloop" / "catB" / "opsloop_two.csv").open()))
    assert {x["label"] for x in rows} == {"0"}
    r = opsloop("bench", "nab", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.startswith("error:")
