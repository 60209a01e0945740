"""Session grouping, count-rule and transition models, HDFS format helpers; synthetic data only."""

from __future__ import annotations

import csv
import importlib.util
import json
import random
from pathlib import Path

import pytest

from opsloop.detect.logs import CountRuleModel, SessionGrouper, TransitionModel
from opsloop.detect.logs.hdfs_format import (
    is_test_block,
    labels_from_rows,
    precision_recall_f1,
    sessions_from_rows,
)

NORMAL = [
    ["alloc", "recv", "recv", "recv", "ack", "ack", "ack", "term", "term", "term"],
    ["recv", "alloc", "recv", "recv", "term", "ack", "term", "ack", "term", "ack"],
    ["alloc", "recv", "recv", "recv", "ack", "ack", "ack", "term", "term", "term", "verify"],
]


def _normal(rng):
    seq = list(rng.choice(NORMAL))
    if rng.random() < 0.3:
        rng.shuffle(seq)
    return seq


def _anomalous(rng):
    kind = rng.randrange(3)
    if kind == 0:
        return ["alloc", "recv"]  # truncated
    if kind == 1:
        return ["alloc", "recv", "recv", "exception"]  # exception template
    return [*_normal(rng), "recv", "ack"]  # one extra replica


# -- grouping ----------------------------------------------------------------------------------
def test_grouper_by_regex_idle_timeout_and_flush():
    g = SessionGrouper(idle_timeout=5.0)
    assert g.add("A", 0.0, "blk_1 start") == []
    assert g.add("B", 1.0, "blk_2 start") == []
    assert g.add("C", 2.0, "copy blk_1 to blk_2") == []
    assert g.add("D", 3.0, "no key here") == []
    closed = g.add("E", 20.0, "blk_3 start")
    assert [(s.key, s.events) for s in closed] == [("blk_1", ("A", "C")), ("blk_2", ("B", "C"))]
    assert [s.key for s in g.flush()] == ["blk_3"]
    assert len(g) == 0


def test_grouper_explicit_key_first_match_and_bounds():
    g = SessionGrouper(pattern=r"req=(\w+)", all_matches=False, max_open=2, max_events=2)
    g.add("A", 0.0, "req=x req=y")
    assert g.keys_of("req=x req=y") == ["x"]
    g.add("B", 1.0, key="z")
    closed = g.add("C", 2.0, key="w")  # third open session: the least recently active closes
    assert [s.key for s in closed] == ["x"]
    for i in range(5):
        g.add("D", 3.0 + i, key="w")
    s = {x.key: x for x in g.flush()}["w"]
    assert s.events == ("C", "D") and s.truncated


def test_grouper_state_round_trip():
    g = SessionGrouper(idle_timeout=10.0)
    g.add("A", 0.0, "blk_-5")
    h = SessionGrouper.from_dict(json.loads(json.dumps(g.to_dict())))
    assert [s.events for s in h.add("B", 1.0, "blk_-5") + h.flush()] == [("A", "B")]


# -- count rules -------------------------------------------------------------------------------
def _train(model, n=600, contamination=0.02, seed=0):
    rng = random.Random(seed)
    for _ in range(n):
        model.learn_one(_anomalous(rng) if rng.random() < contamination else _normal(rng))


def test_count_rules_separate_synthetic_anomalies_despite_contaminated_training():
    m = CountRuleModel()
    _train(m)
    rng = random.Random(99)
    y, pred = [], []
    for _ in range(400):
        anomalous = rng.random() < 0.1
        seq = _anomalous(rng) if anomalous else _normal(rng)
        y.append(int(anomalous))
        pred.append(int(m.predict_one(seq)))
    p, r, f1 = precision_recall_f1(y, pred)
    assert f1 == 1.0, (p, r)


def test_count_rules_order_free_and_explains():
    m = CountRuleModel()
    _train(m, contamination=0.0)
    assert not m.predict_one(list(reversed(NORMAL[0])))
    assert m.score_one(NORMAL[0]) == 0.0
    bad = ["alloc", "recv", "recv", "exception"]
    assert m.score_one(bad) >= m.threshold
    why = m.explain_one(bad)
    assert why[0].startswith("template exception never seen")
    assert any("count(term)=0" in w for w in why)
    a = m.anomaly("blk_7", bad, 5.0)
    assert a is not None and a.key == "blk_7" and a.kind == "session" and a.evidence == why
    assert m.anomaly("blk_8", NORMAL[1], 5.0) is None


def test_count_rules_mine_ratio_invariant():
    m = CountRuleModel()
    rng = random.Random(3)
    for _ in range(300):
        k = rng.randint(1, 6)  # variable size, but always two acks per write
        m.learn_one(["write"] * k + ["ack"] * (2 * k))
    assert m.rules() == ["1*count(ack)=2*count(write) [100.0%]"]
    assert not m.predict_one(["write"] * 9 + ["ack"] * 18)  # unseen size, same invariant
    assert m.predict_one(["write"] * 3 + ["ack"] * 5)


def test_count_rules_support_threshold_and_rejects_bad_params():
    m = CountRuleModel(support=0.9)
    assert m.threshold == pytest.approx(1.0)
    with pytest.raises(ValueError):
        CountRuleModel(support=1.0)


def test_count_rules_bounded_patterns_and_round_trip():
    m = CountRuleModel(max_patterns=20)
    for k in range(100):
        m.learn_one(["x"] * (k + 1))
    assert len(m.to_dict()["patterns"]) <= 20
    assert m.n_sessions == 100
    m2 = CountRuleModel()
    _train(m2)
    m3 = CountRuleModel.from_dict(json.loads(json.dumps(m2.to_dict())))
    assert m3.rules() == m2.rules()
    for seq in [*NORMAL, ["alloc"], ["x", "y"]]:
        assert m3.score_one(seq) == m2.score_one(seq)


# -- transitions -------------------------------------------------------------------------------
def test_transitions_threshold_from_training_and_round_trip():
    m = TransitionModel()
    rng = random.Random(5)
    train = [list(rng.choice(NORMAL)) for _ in range(300)]
    for s in train:
        m.learn_one(s)
    with pytest.raises(RuntimeError):
        m.predict_one(train[0])
    m.fit_threshold(train)
    assert sum(m.predict_one(s) for s in train) <= 0.01 * len(train) + 1
    odd = ["term", "alloc", "ack"]
    assert m.predict_one(odd)
    a = m.anomaly("k", odd, 1.0)
    assert a is not None and "transition" in a.evidence[0]
    m2 = TransitionModel.from_dict(json.loads(json.dumps(m.to_dict())))
    assert m2.score_one(odd) == m.score_one(odd) and m2.threshold == m.threshold


# -- HDFS format + benchmark driver ------------------------------------------------------------
def test_hdfs_helpers_never_need_labels():
    rows = [{"BlockId": "blk_1", "EventSequence": "T1 T2"}]
    assert sessions_from_rows(rows) == [("blk_1", ["T1", "T2"])]
    assert labels_from_rows(rows) is None
    assert labels_from_rows([{"BlockId": "b", "Label": "1"}]) == {"b": 1}
    share = sum(is_test_block(f"blk_{i}") for i in range(2000)) / 2000
    assert 0.45 < share < 0.55
    assert is_test_block("blk_1", salt="a") == is_test_block("blk_1", salt="a")


def _load_bench():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "hdfs.py"
    spec = importlib.util.spec_from_file_location("bench_hdfs", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(path, sessions):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["BlockId", "Label", "EventSequence"])
        for i, (label, seq) in enumerate(sessions):
            w.writerow([f"blk_{i}", label, " ".join(seq)])


def test_run_hdfs_driver_on_synthetic_files(tmp_path):
    bench = _load_bench()
    rng = random.Random(7)
    # training labels are deliberately wrong: the driver must not read them
    _write(tmp_path / "train.csv", [(1, _normal(rng)) for _ in range(300)])
    test = [(1, _anomalous(rng)) for _ in range(10)] + [(0, _normal(rng)) for _ in range(90)]
    _write(tmp_path / "test.csv", test)
    out = tmp_path / "pred.csv"
    summary = bench.run_hdfs(tmp_path / "train.csv", tmp_path / "test.csv", out)
    assert summary["f1"] == 1.0 and summary["train_sessions"] == 300
    with open(out, newline="") as f:
        pred = list(csv.DictReader(f))
    assert list(pred[0]) == ["BlockId", "Score", "Predicted"]
    assert [int(r["Predicted"]) for r in pred] == [y for y, _ in test]


def test_peer_invariants_and_oracle_ceiling():
    bench = _load_bench()
    rng = random.Random(8)
    train = [_normal(rng) for _ in range(300)]
    vocab = sorted({e for s in train for e in s})
    im = bench.InvariantsMiner().fit(bench.count_matrix(train, vocab))
    _, pred = im.predict(bench.count_matrix([NORMAL[0], ["alloc", "recv"]], vocab))
    assert list(pred) == [0, 1]
    assert bench.oracle_ceiling([["a"], ["a"], ["b"]], [0, 1, 1]) == pytest.approx(0.8)
