"""Anomaly record, template novelty, frequency bursts and silences; synthetic data only."""

from __future__ import annotations

import doctest
import itertools
import json
import math
import random
from datetime import UTC, datetime

import pytest

import opsloop.detect.anomaly as anomaly_mod
import opsloop.detect.logs.count_rules as count_rules_mod
import opsloop.detect.logs.frequency as frequency_mod
import opsloop.detect.logs.hdfs_format as hdfs_format_mod
import opsloop.detect.logs.novelty as novelty_mod
import opsloop.detect.logs.sessions as sessions_mod
import opsloop.detect.logs.transitions as transitions_mod
from opsloop.detect.anomaly import Anomaly, to_epoch
from opsloop.detect.logs import FrequencyDetector, NoveltyScorer


@pytest.mark.parametrize(
    "module",
    [
        anomaly_mod,
        novelty_mod,
        frequency_mod,
        sessions_mod,
        count_rules_mod,
        transitions_mod,
        hdfs_format_mod,
    ],
)
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


# -- Anomaly ---------------------------------------------------------------------------------------
def test_anomaly_is_frozen_and_round_trips_through_json():
    a = Anomaly("s", "k", 2.5, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "key", ["e"], {"x": 1})
    with pytest.raises(AttributeError):
        a.score = 3.0  # type: ignore[misc]
    back = Anomaly.from_dict(json.loads(json.dumps(a.to_dict())))
    assert back == a
    assert to_epoch(a.time) == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()


# -- novelty ---------------------------------------------------------------------------------------
def test_novelty_new_then_fades_monotonically():
    s = NoveltyScorer(familiarity=3.0)
    first = s.learn_one("A", 0.0)
    assert first is not None and first.kind == "new_template" and first.score == 1.0
    scores = []
    for i in range(1, 20):
        scores.append(s.score_one("A"))
        s.learn_one("A", float(i))
    assert all(b < a for a, b in itertools.pairwise(scores))
    assert scores[-1] < 0.01
    assert s.learn_one("A", 30.0) is None
    assert math.isclose(s.score_one("A"), math.exp(-21 / 3.0))


def test_novelty_rarity_grows_with_traffic():
    s = NoveltyScorer(familiarity=1.0, rarity=0.01)
    for i in range(10_000):
        s.learn_one("common", float(i))
    for i in range(5):
        s.learn_one("rare", 10_000.0 + i)
    # tau = 0.01 * 10_005 ~ 100: five sightings in ten thousand lines are still rare
    assert s.score_one("rare") > 0.9
    a = s.learn_one("rare", 20_000.0)
    assert a is not None and a.kind == "rare_template"
    assert s.score_one("common") < 1e-6


def test_novelty_half_life_forgets():
    s = NoveltyScorer(familiarity=1.0, half_life=10.0)
    for i in range(10):
        s.learn_one("A", float(i))
    assert s.score_one("A", 9.0) < 1e-3
    assert s.score_one("A", 9.0 + 100.0) > 0.99  # ten half-lives later it is novel again
    for i in range(2000):  # the forgotten entry is pruned: memory stays bounded
        s.learn_one("B", 10_000.0 + i)
    assert len(s) == 1


def test_novelty_state_round_trip():
    s = NoveltyScorer(half_life=60.0)
    for i, k in enumerate("AABAC"):
        s.learn_one(k, float(i))
    t = NoveltyScorer.from_dict(json.loads(json.dumps(s.to_dict())))
    for k in "ABCD":
        assert t.score_one(k) == s.score_one(k)


def test_novelty_rejects_bad_params():
    with pytest.raises(ValueError):
        NoveltyScorer(threshold=0)


# -- frequency -------------------------------------------------------------------------------------
def _stream(rng, windows, window=60.0):
    """Poisson-ish traffic: 'info' ~ 20 per window, 'heartbeat' exactly 1, 'error' 0 or 1."""
    for w in range(windows):
        base = w * window
        yield "heartbeat", base + 1.0
        for _ in range(rng.randint(15, 25)):
            yield "info", base + rng.uniform(0, window)
        if rng.random() < 0.3:
            yield "error", base + rng.uniform(0, window)


def test_frequency_quiet_on_normal_traffic():
    rng = random.Random(1)
    d = FrequencyDetector()
    events = sorted(_stream(rng, 200), key=lambda e: e[1])
    out = [a for k, t in events for a in d.learn_one(k, t)]
    assert out == []


def test_frequency_detects_error_burst_and_heartbeat_silence():
    rng = random.Random(2)
    d = FrequencyDetector()
    events = sorted(_stream(rng, 100), key=lambda e: e[1])
    for k, t in events:
        assert d.learn_one(k, t) == []
    start = 100 * 60.0
    out = []
    for i in range(40):  # window 100: an error storm and no heartbeat
        out += d.learn_one("error", start + i)
        out += d.learn_one("info", start + i + 0.5)
    out += d.advance(start + 60.0)
    kinds = {(a.kind, a.key) for a in out}
    assert kinds == {("burst", "error"), ("silence", "heartbeat")}
    burst = next(a for a in out if a.kind == "burst")
    assert burst.score > 10 and burst.details["count"] == 40
    assert burst.time == start + 60.0
    # the silence is reported once, not for every further empty window
    more = d.advance(start + 10 * 60.0)
    assert [a.key for a in more if a.kind == "silence"] == ["info"]  # info stopped too


def test_frequency_burst_needs_real_excess_for_rare_template():
    d = FrequencyDetector(window=1.0, min_windows=3)
    for w in range(20):
        d.learn_one("tick", w + 0.5)
    out = d.learn_one("rare", 20.5) + d.learn_one("rare", 20.6) + d.advance(30.0)
    assert all(a.key != "rare" for a in out)  # a brand-new template is the novelty detector's job


def test_frequency_accepts_datetimes_and_round_trips():
    d = FrequencyDetector(window=60.0, min_windows=2)
    t0 = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    for w in range(5):
        d.learn_one("a", datetime.fromtimestamp(t0 + w * 60 + 1, tz=UTC))
    e = FrequencyDetector.from_dict(json.loads(json.dumps(d.to_dict())))
    out_d = d.advance(t0 + 6 * 60)
    out_e = e.advance(t0 + 6 * 60)
    assert [a.to_dict() for a in out_d] == [a.to_dict() for a in out_e]
    assert [a.kind for a in out_d] == ["silence"]


def test_frequency_memory_forgets_dead_templates():
    d = FrequencyDetector(window=1.0, alpha=0.5)
    for i in range(50):
        d.learn_one(f"once-{i}", i + 0.5)
    d.advance(200.0)
    assert len(d) <= 2


def test_frequency_counts_slightly_late_lines_and_drops_a_backlog():
    d = FrequencyDetector(window=60.0, min_windows=3, max_lateness=2)
    for w in range(20):  # steady: 10 lines a window
        for i in range(10):
            d.learn_one("req", w * 60.0 + i)
    d.advance(20 * 60.0)  # the clock runs past window 19: window 20 is open
    for i in range(10):  # a shipper 1 window behind: counted in the open window
        d.learn_one("req", 19 * 60.0 + 30.0 + i)
    # a backlog of ten old windows: final already, not counted, no burst
    backlog = [d.learn_one("req", w * 60.0 + i) for w in range(5, 15) for i in range(10)]
    assert d.late == 100 and all(out == [] for out in backlog)
    out = d.advance(21 * 60.0)
    assert out == []  # window 20 holds 10 lines (the late ones): no burst, no silence
    e = FrequencyDetector.from_dict(json.loads(json.dumps(d.to_dict())))
    assert e.late == 100 and e.max_lateness == 2


def test_frequency_rejects_negative_lateness():
    with pytest.raises(ValueError, match="max_lateness"):
        FrequencyDetector(max_lateness=-1)


def test_frequency_no_silence_for_a_template_that_is_sometimes_absent():
    rng = random.Random(9)
    d = FrequencyDetector(window=60.0)
    out = []
    for w in range(400):  # a template missing from about one window in twenty
        if rng.random() > 0.05:
            for i in range(3):
                out += d.learn_one("cache miss", w * 60.0 + 10 * i)
        out += d.learn_one("heartbeat", w * 60.0 + 1)
    assert [a for a in out if a.kind == "silence"] == []
    out = d.advance(401 * 60.0)  # the heartbeat stops: it was present in every window
    assert [(a.kind, a.key) for a in out if a.kind == "silence"] == [("silence", "heartbeat")]


def test_frequency_no_silence_for_an_expected_empty_window_of_poisson_traffic():
    # about 3 lines a window at random: e^-3 = 5 % of windows are empty, by chance
    rng = random.Random(12)
    d = FrequencyDetector(window=60.0)
    out = []
    empty = 0
    for w in range(600):
        t = w * 60.0 + rng.expovariate(3.0 / 60.0)
        n = 0
        while t < (w + 1) * 60.0:  # a Poisson process of rate 3 a window
            out += d.learn_one("GET /item", t)
            t += rng.expovariate(3.0 / 60.0)
            n += 1
        empty += n == 0
        out += d.learn_one("heartbeat", w * 60.0 + 59.0)
    assert empty >= 15  # the empty windows are there
    assert [a for a in out if a.kind == "silence"] == []
    out = d.advance(601 * 60.0)
    assert [a.key for a in out if a.kind == "silence"] == ["heartbeat"]
