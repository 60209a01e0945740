"""`opsloop bench loghub|hdfs` on small data made here (tests never read ../shared)."""

import csv
import json
import subprocess
import sys


def opsloop(*args):
    return subprocess.run(
        [sys.executable, "-m", "opsloop.cli", *args], capture_output=True, text=True, timeout=120
    )


def make_loghub(root):
    (root / "Tiny").mkdir(parents=True)
    (root / "formats.json").write_text(json.dumps({"Tiny": "<Time> <Level>: <Content>"}))
    rows = []
    for i in range(40):
        rows.append(
            (f"10:00:{i:02d}", "INFO", f"job {i} done in {i * 2} s", "E1", "job <*> done in <*> s")
        )
        rows.append(
            (f"10:01:{i:02d}", "WARN", f"disk {i % 3} at {50 + i}%", "E2", "disk <*> at <*>%")
        )
    with (root / "Tiny" / "Tiny_2k.log").open("w") as f:
        for t, lv, content, *_ in rows:
            f.write(f"{t} {lv}: {content}\r\n")
    with (root / "Tiny" / "Tiny_2k.log_structured.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["LineId", "Time", "Level", "Content", "EventId", "EventTemplate"])
        for n, (t, lv, content, eid, tpl) in enumerate(rows, 1):
            w.writerow([n, t, lv, content, eid, tpl])


def test_bench_loghub(tmp_path):
    make_loghub(tmp_path)
    r = opsloop("bench", "loghub", "--data", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    (row,) = result["systems"]
    assert row["system"] == "Tiny" and row["lines"] == 80
    assert row["ga"] == 1.0 and row["templates"] == 2
    assert result["mean_ga"] == row["ga"]
    table = opsloop("bench", "loghub", "--data", str(tmp_path))
    assert "mean" in table.stdout and "Tiny" in table.stdout


def test_bench_loghub_bad_folder(tmp_path):
    r = opsloop("bench", "loghub", "--data", str(tmp_path))
    assert r.returncode == 2 and r.stderr.startswith("error:") and "formats.json" in r.stderr


def write_sessions(path, rows, labels=True):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["BlockId", "Label", "EventSequence"] if labels else ["BlockId", "EventSequence"]
        )
        for block, label, seq in rows:
            w.writerow([block, label, seq] if labels else [block, seq])


def test_bench_hdfs_never_reads_train_labels(tmp_path):
    normal = "T1 T2 T2 T3"
    train = [(f"blk_{i}", "1", normal) for i in range(200)]  # labels lie: all "anomalous"
    test = [(f"blk_t{i}", "0", normal) for i in range(50)]
    test += [("blk_bad1", "1", "T1 T2"), ("blk_bad2", "1", "T1 T2 T2 T3 T9")]
    write_sessions(tmp_path / "train.csv", train)
    write_sessions(tmp_path / "test.csv", test)
    out = tmp_path / "pred.csv"
    r = opsloop("bench", "hdfs", "--train", str(tmp_path / "train.csv"),
                "--test", str(tmp_path / "test.csv"), "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "f1=1.0000" in r.stdout
    preds = {row["BlockId"]: row for row in csv.DictReader(out.open())}
    assert len(preds) == 52
    assert preds["blk_bad1"]["Predicted"] == "1" and preds["blk_t3"]["Predicted"] == "0"
    # a train file without any Label column works the same
    write_sessions(tmp_path / "train2.csv", train, labels=False)
    r = opsloop("bench", "hdfs", "--train", str(tmp_path / "train2.csv"),
                "--test", str(tmp_path / "test.csv"), "--out", str(out))  # fmt: skip
    assert "f1=1.0000" in r.stdout
