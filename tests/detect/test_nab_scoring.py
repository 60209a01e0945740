"""NAB scorer against hand-computed examples (synthetic only)."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from opsloop.detect.metrics import nab_scoring
from opsloop.detect.metrics.nab_scoring import (
    PROFILES,
    FileLabels,
    file_weights,
    normalised_score,
    probationary_length,
    scaled_sigmoid,
    score_corpus,
    score_file_at_threshold,
    sweep_thresholds,
    window_indices,
)

STD = PROFILES["standard"]


def test_doctests():
    result = doctest.testmod(nab_scoring)
    assert result.failed == 0 and result.attempted > 0


def test_scaled_sigmoid_values():
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(3.5) == -1.0
    assert scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert scaled_sigmoid(1.0) == pytest.approx(2 / (1 + math.exp(5)) - 1)


def test_probation():
    assert probationary_length(1000) == 150
    assert probationary_length(4032) == 604
    assert probationary_length(20000) == 750


def test_window_indices_inclusive():
    assert window_indices([0, 5, 10, 15, 20], [(5, 15)]) == [(1, 3)]
    assert window_indices([0, 5, 10, 15, 20], [(4, 16)]) == [(1, 3)]


def test_weights_hand_computed():
    w, ids = file_weights(10, [(4, 7)], STD)
    sig1 = scaled_sigmoid(-1.0)
    assert w[:4] == pytest.approx([-0.11] * 4)
    assert w[4] == pytest.approx(1.0)  # earliest row of the window
    assert w[5] == pytest.approx(scaled_sigmoid(-0.75) / sig1)
    assert w[7] == pytest.approx(scaled_sigmoid(-0.25) / sig1)
    assert w[8] == pytest.approx(0.11 * scaled_sigmoid(1 / 3))
    assert w[9] == pytest.approx(0.11 * scaled_sigmoid(2 / 3))
    assert ids.tolist() == [-1] * 4 + [0] * 4 + [-1] * 2


def test_file_score_hand_computed():
    # 20 rows -> probation 3; window rows 10..13
    windows = [(10, 13)]
    scores = np.zeros(20)
    scores[1] = 1.0  # probationary: ignored
    scores[5] = 0.9  # FP before any window: -0.11
    scores[11] = 0.8  # TP at p = -0.75
    scores[12] = 0.95  # later TP: only the max weight counts
    expected = -0.11 + scaled_sigmoid(-0.75) / scaled_sigmoid(-1.0)
    assert score_file_at_threshold(scores, windows, STD, 0.5) == pytest.approx(expected)
    # at 0.92 only rows 12 (TP, p=-0.5) and 1 (probation) are detections
    expected = scaled_sigmoid(-0.5) / scaled_sigmoid(-1.0)
    assert score_file_at_threshold(scores, windows, STD, 0.92) == pytest.approx(expected)
    # above everything: one miss
    assert score_file_at_threshold(scores, windows, STD, 1.1) == -1.0


def test_sweep_matches_direct_definition():
    rng = np.random.default_rng(0)
    labels = {"a": FileLabels(300, ((100, 130), (200, 240))), "b": FileLabels(200, ((150, 170),))}
    res = {k: rng.random(v.n_rows) for k, v in labels.items()}
    files = [(res[k], labels[k]) for k in sorted(labels)]
    for name, prof in PROFILES.items():
        thresholds, values = sweep_thresholds(files, prof)
        for t in thresholds[:: max(1, len(thresholds) // 40)]:
            direct = sum(
                score_file_at_threshold(res[k], labels[k].windows, prof, t) for k in labels
            )
            assert direct == pytest.approx(values[list(thresholds).index(t)]), name


def test_null_and_perfect_normalisation():
    labels = {"a": FileLabels(100, ((40, 49),)), "b": FileLabels(100, ((60, 69), (80, 89)))}
    null = {k: np.zeros(v.n_rows) for k, v in labels.items()}
    perfect = {k: np.zeros(v.n_rows) for k, v in labels.items()}
    for k, v in labels.items():
        for left, _ in v.windows:
            perfect[k][left] = 1.0
    for p in PROFILES:
        assert score_corpus(null, labels, p).normalised == pytest.approx(0.0)
        assert score_corpus(perfect, labels, p).normalised == pytest.approx(100.0)
    assert normalised_score(-3.0, 3, STD) == 0.0
    assert normalised_score(3.0, 3, STD) == 100.0


def test_low_fp_profile_penalises_false_positives_more():
    labels = {"a": FileLabels(200, ((100, 119),))}
    scores = np.zeros(200)
    scores[100] = 1.0
    scores[[40, 50, 60]] = 1.0
    std = score_corpus({"a": scores}, labels, "standard")
    low_fp = score_corpus({"a": scores}, labels, "reward_low_FP_rate")
    assert std.raw == pytest.approx(1.0 - 3 * 0.11)
    assert low_fp.raw == pytest.approx(1.0 - 3 * 0.22)
    assert std.false_positives == 3 and std.true_positives == 1
