"""Reference profiles, drift statistics and per-feature / dataset drift decisions (synthetic)."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest

from opsloop.learn.monitoring import drift, performance, profile, stattests
from opsloop.learn.monitoring.drift import choose_method, detect_drift, feature_drift
from opsloop.learn.monitoring.performance import classification_metrics, regression_metrics
from opsloop.learn.monitoring.profile import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    infer_kind,
)


@pytest.mark.parametrize("module", [stattests, profile, drift, performance])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0


# -- statistics against scipy's reference implementations ---------------------------------------


def test_wasserstein_matches_scipy():
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(1)
    for _ in range(5):
        a = rng.normal(size=int(rng.integers(5, 400)))
        b = rng.gamma(2.0, size=int(rng.integers(5, 400)))
        assert stattests.wasserstein_sorted(np.sort(a), b) == pytest.approx(
            wasserstein_distance(a, b), rel=1e-12
        )


def test_jensenshannon_and_chisquare_match_scipy():
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chisquare

    rng = np.random.default_rng(2)
    r = rng.integers(1, 50, 6).astype(float)
    c = rng.integers(0, 50, 6).astype(float)
    assert stattests.jensenshannon(r, c) == pytest.approx(jensenshannon(r, c), rel=1e-12)
    expected = r * c.sum() / r.sum()
    assert stattests.chisquare_pvalue(r, c) == pytest.approx(chisquare(c, expected).pvalue)


def test_z_test_matches_normal_formula():
    from scipy.stats import norm

    # 60 of 200 vs 90 of 200 in the first category
    p1, p2 = 1 - 60 / 200, 1 - 90 / 200
    pooled = (p1 + p2) / 2
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (2 / 200))
    assert stattests.z_pvalue(60, 200, 90, 200) == pytest.approx(2 * (1 - norm.cdf(abs(z))))
    assert stattests.z_pvalue(200, 200, 100, 100) == 1.0  # one value on both sides


def test_psi_fills_empty_cells():
    value = stattests.psi(np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5]))
    r = np.array([0.5, 0.5, 1e-4])
    c = np.array([0.25, 0.25, 0.5])
    assert value == pytest.approx(float(np.sum((r - c) * np.log(r / c))))


# -- profile ------------------------------------------------------------------------------------


def test_kind_inference_follows_evidently_rules():
    assert infer_kind(np.array([1.0, 2.0, 3.0])) == "numeric"
    assert infer_kind(np.arange(11)) == "numeric"  # 11 distinct integers
    assert infer_kind(np.arange(10)) == "categorical"  # 10 distinct integers
    assert infer_kind([True, False, True]) == "categorical"
    assert infer_kind(["a", "b"] * 5) == "categorical"
    assert infer_kind([f"id{i}" for i in range(10)]) == "text"
    assert infer_kind([None, None]) == "unknown"


def test_profile_skips_text_and_honours_forced_kinds():
    data = {"id": [f"u{i}" for i in range(100)], "n": list(range(100)), "k": [1, 2] * 50}
    prof = ReferenceProfile.from_data(data, categorical=["n"], numeric=["k"], exclude=[])
    assert prof.skipped == {"id": "text"}
    assert isinstance(prof.columns["n"], CategoricalProfile)
    assert isinstance(prof.columns["k"], NumericProfile)


def test_profile_drops_missing_and_counts_them():
    x = np.array([1.0, np.nan, np.inf, -np.inf, 2.0, 3.0])
    prof = NumericProfile.from_values("x", x)
    assert (prof.n, prof.n_missing) == (3, 3)
    assert prof.std == pytest.approx(np.std([1.0, 2.0, 3.0]))
    cat = CategoricalProfile.from_values("c", ["a", None, float("nan"), "b", "a"])
    assert (cat.n, cat.n_missing, cat.counts) == (3, 2, {"a": 2, "b": 1})


def test_profile_json_round_trip_gives_identical_decisions():
    rng = np.random.default_rng(3)
    data = {
        "small": rng.normal(size=600),
        "big": rng.lognormal(size=12_000),
        "few": rng.choice([0.0, 1.0, 2.0], 3000),
        "cat": rng.choice(["a", "b", "c", "d"], 600),
        "flag": rng.choice([True, False], 3000),
    }
    prof = ReferenceProfile.from_data(data, prediction=rng.integers(0, 2, 3000))
    text = json.dumps(prof.to_dict())
    back = ReferenceProfile.from_dict(json.loads(text))
    assert back.to_dict() == prof.to_dict()
    assert not back.columns["big"].exact and back.columns["small"].exact
    current = {
        "small": rng.normal(0.3, size=300),
        "big": rng.lognormal(size=500),
        "few": rng.choice([0.0, 1.0, 2.0], 500),
        "cat": rng.choice(["a", "b", "e"], 300),
        "flag": rng.choice([True, False], 500),
    }
    assert detect_drift(back, current).to_dict() == detect_drift(prof, current).to_dict()


def test_profile_rejects_unknown_format():
    with pytest.raises(ValueError, match="format"):
        ReferenceProfile.from_dict({"format": 99, "columns": {}, "n_rows": 0})


@pytest.mark.parametrize("dist", ["normal", "lognormal"])
def test_bin_means_keep_wasserstein_close_to_full_data(dist):
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(4)
    draw = rng.normal if dist == "normal" else rng.lognormal
    ref = draw(size=50_000)
    prof = NumericProfile.from_values("x", ref)
    assert prof.values.size == 5000 and not prof.exact
    assert np.all(np.diff(prof.values) >= 0)
    assert prof.values.mean() == pytest.approx(ref.mean(), rel=1e-9)  # bin means keep the mean
    for factor in (1.0, 1.1, 1.5):
        for m in (200, 2000):
            cur = draw(size=m) * factor
            full = wasserstein_distance(ref, cur) / np.std(ref)
            res = feature_drift(prof, cur)
            assert res.method == "wasserstein"
            assert abs(res.statistic - full) < 2e-4


# -- choice of test -----------------------------------------------------------------------------


def _num(n, rng, values=None):
    x = rng.normal(size=n) if values is None else rng.choice(values, n)
    return NumericProfile.from_values("x", x)


def test_default_test_choice_table():
    rng = np.random.default_rng(5)
    assert choose_method(_num(1000, rng), 100) == "ks"
    assert choose_method(_num(1001, rng), 100) == "wasserstein"
    assert choose_method(_num(500, rng, [0.0, 1.0, 2.0]), 3) == "chisquare"
    assert choose_method(_num(500, rng, [0.0, 1.0]), 2) == "z"
    assert choose_method(_num(5000, rng, [0.0, 1.0]), 2) == "jensenshannon"
    small = CategoricalProfile.from_values("c", ["a", "b", "c"] * 100)
    big = CategoricalProfile.from_values("c", ["a", "b"] * 1000)
    assert choose_method(small, 3) == "chisquare"
    assert choose_method(small, 2) == "z"
    assert choose_method(big, 2) == "jensenshannon"


def test_reference_size_counts_non_missing_rows_only():
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.normal(size=1000), [np.nan] * 50])
    prof = NumericProfile.from_values("x", x)
    assert feature_drift(prof, rng.normal(size=200)).method == "ks"


def test_distinct_count_uses_both_samples():
    rng = np.random.default_rng(7)
    prof = _num(800, rng, [0.0, 1.0, 2.0, 3.0, 4.0])
    assert feature_drift(prof, rng.choice([0.0, 1.0], 300)).method == "chisquare"
    # a sixth value in the window makes it a continuous test
    assert feature_drift(prof, rng.choice([0.0, 5.0], 300)).method == "ks"


# -- decisions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_ref", [800, 5000])
def test_mean_shift_and_wider_variance_are_detected(n_ref):
    rng = np.random.default_rng(8)
    prof = NumericProfile.from_values("x", rng.normal(size=n_ref))
    shifted = feature_drift(prof, rng.normal(0.5, 1.0, 500))
    wider = feature_drift(prof, rng.normal(0.0, 2.0, 500))
    assert shifted.drifted and wider.drifted
    assert shifted.method == ("ks" if n_ref <= 1000 else "wasserstein")


@pytest.mark.parametrize("n_ref", [800, 5000])
def test_no_drift_is_rarely_flagged(n_ref):
    flagged = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        prof = ReferenceProfile.from_data(
            {
                "x": rng.normal(size=n_ref),
                "c": rng.choice(["a", "b", "c"], n_ref, p=[0.6, 0.3, 0.1]),
            }
        )
        cur = {"x": rng.normal(size=500), "c": rng.choice(["a", "b", "c"], 500, p=[0.6, 0.3, 0.1])}
        result = detect_drift(prof, cur)
        flagged += sum(f.drifted for f in result.features.values())
    # 80 tests; p-value tests at 5 % expect about 4 false alarms, distances fewer
    assert flagged <= 10


def test_new_category_is_drift_with_chisquare_and_jensenshannon():
    rng = np.random.default_rng(9)
    cats = ["a", "b", "c"]
    small = CategoricalProfile.from_values("c", rng.choice(cats, 600))
    big = CategoricalProfile.from_values("c", rng.choice(cats, 5000))
    cur = list(rng.choice(cats, 300)) + ["new"] * 2
    res = feature_drift(small, cur)
    assert (res.method, res.statistic, res.drifted, res.n_unseen) == ("chisquare", 0.0, True, 2)
    # a rare new category barely moves JS; a common one does
    assert not feature_drift(big, cur).drifted
    many = feature_drift(big, list(rng.choice(cats, 300)) + ["new"] * 100)
    assert many.method == "jensenshannon" and many.drifted and many.n_unseen == 100


def test_binary_categorical_uses_z_test():
    rng = np.random.default_rng(10)
    prof = CategoricalProfile.from_values("f", rng.choice([True, False], 500))
    assert not feature_drift(prof, rng.choice([True, False], 400)).drifted
    moved = feature_drift(prof, rng.choice([True, False], 400, p=[0.8, 0.2]))
    assert moved.method == "z" and moved.drifted


def test_integral_floats_match_integer_categories():
    prof = CategoricalProfile.from_values("k", [1, 2, 3] * 100)
    res = feature_drift(prof, [1.0, 2.0, 3.0] * 50)
    assert res.n_unseen == 0 and not res.drifted


def test_nan_inf_and_garbage_in_current_are_dropped_and_counted():
    rng = np.random.default_rng(11)
    prof = NumericProfile.from_values("x", rng.normal(size=700))
    values = [*rng.normal(size=200).tolist(), np.nan, np.inf, -np.inf, None, "oops"]
    res = feature_drift(prof, values)
    assert (res.n_current, res.n_missing) == (200, 5)
    assert res.tested and not res.drifted
    cat = CategoricalProfile.from_values("c", ["a", "b"] * 50)
    res = feature_drift(cat, ["a", None, float("nan"), "b"])
    assert (res.n_current, res.n_missing) == (2, 2)


def test_empty_or_absent_columns_are_untested_and_left_out_of_the_share():
    rng = np.random.default_rng(12)
    prof = ReferenceProfile.from_data(
        {"x": rng.normal(size=500), "y": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)}
    )
    result = detect_drift(prof, {"x": [np.nan] * 20, "y": rng.normal(3.0, size=50)})
    assert not result.features["x"].tested and not result.features["c"].tested
    assert math.isnan(result.features["x"].statistic)
    assert result.features["x"].to_dict()["statistic"] is None
    assert (result.n_tested, result.n_drifted, result.share, result.drifted) == (1, 1, 1.0, True)
    nothing = detect_drift(prof, {})
    assert (nothing.n_tested, nothing.share, nothing.drifted) == (0, 0.0, False)


def test_dataset_drift_share_threshold():
    rng = np.random.default_rng(13)
    prof = ReferenceProfile.from_data({k: rng.normal(size=600) for k in "abcd"})
    cur = {k: rng.normal(size=400) for k in "abcd"}
    cur["a"] = cur["a"] + 2.0
    one = detect_drift(prof, cur)
    assert (one.n_drifted, one.share, one.drifted) == (1, 0.25, False)
    cur["b"] = cur["b"] + 2.0
    two = detect_drift(prof, cur)
    assert (two.n_drifted, two.share, two.drifted) == (2, 0.5, True)  # share >= 0.5
    assert not detect_drift(prof, cur, drift_share=0.75).drifted


def test_forced_methods_and_thresholds():
    rng = np.random.default_rng(14)
    prof = ReferenceProfile.from_data(
        {"x": rng.normal(size=3000), "c": rng.choice(["a", "b", "c"], 3000)}
    )
    same = {"x": rng.normal(size=2000), "c": rng.choice(["a", "b", "c"], 2000)}
    moved = {
        "x": rng.normal(1.0, size=2000),
        "c": rng.choice(["a", "b", "c"], 2000, p=[0.8, 0.1, 0.1]),
    }
    for method in ("psi", "jensenshannon"):
        assert detect_drift(prof, same, method=method).n_drifted == 0
        assert detect_drift(prof, moved, method=method).n_drifted == 2
    ks = detect_drift(prof, moved, per_feature_method={"x": "ks"}).features["x"]
    assert ks.method == "ks" and ks.is_p_value and ks.drifted
    loose = detect_drift(prof, moved, threshold=10.0).features["x"]
    assert loose.method == "wasserstein" and loose.threshold == 10.0 and not loose.drifted
    with pytest.raises(ValueError, match="does not apply"):
        feature_drift(prof.columns["c"], ["a"], method="ks")
    with pytest.raises(ValueError, match="unknown drift method"):
        feature_drift(prof.columns["x"], [1.0], method="magic")


def test_prediction_drift_needs_reference_predictions():
    rng = np.random.default_rng(15)
    with_pred = ReferenceProfile.from_data({"x": rng.normal(size=200)}, prediction=[0, 1] * 100)
    res = drift.prediction_drift(with_pred, [1] * 100)
    assert res.method == "z" and res.drifted
    with pytest.raises(ValueError, match="no reference predictions"):
        drift.prediction_drift(ReferenceProfile.from_data({"x": [1.0]}), [1])


# -- performance --------------------------------------------------------------------------------


def test_classification_metrics_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(16)
    y = rng.integers(0, 2, 300)
    score = np.clip(y * 0.3 + rng.normal(0.35, 0.25, 300), 0, 1)
    score[:20] = 0.5  # ties
    pred = (score > 0.5).astype(int)
    got = classification_metrics(list(y), list(pred), scores=list(score))
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(metrics.f1_score(y, pred))
    assert got["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, score))
    labels = rng.choice(["x", "y", "z"], 200)
    guess = np.where(rng.random(200) < 0.7, labels, rng.choice(["x", "y", "z"], 200))
    macro = classification_metrics(list(labels), list(guess))["f1"]
    assert macro == pytest.approx(metrics.f1_score(labels, guess, average="macro"))


def test_regression_metrics_and_edge_cases():
    got = regression_metrics([1.0, 2.0, None, 4.0], [2.0, 2.0, 1.0, 1.0])
    assert got == pytest.approx({"mae": 4 / 3, "rmse": math.sqrt(10 / 3)})
    assert regression_metrics([None], [1.0]) == {}
    assert classification_metrics([], []) == {}
    one_class = classification_metrics([1, 1], [1, 0], scores=[0.9, 0.1])
    assert "roc_auc" not in one_class


def test_agreement_with_evidently_when_installed():
    """Same decisions as Evidently's DataDriftPreset on a few mixed cases (skipped without it)."""
    pytest.importorskip("evidently")
    import warnings

    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    rng = np.random.default_rng(17)
    for n_ref, shift in ((600, 0.0), (600, 0.3), (3000, 0.0), (3000, 0.3)):
        ref = pd.DataFrame(
            {
                "x": rng.normal(size=n_ref),
                "c": rng.choice(["a", "b", "c"], n_ref),
                "f": rng.choice(["p", "q"], n_ref),
            }
        )
        cur = pd.DataFrame(
            {
                "x": rng.normal(shift, size=400),
                "c": rng.choice(
                    ["a", "b", "c", "d"], 400, p=[0.4, 0.3, 0.3 - shift / 2, shift / 2]
                ),
                "f": rng.choice(["p", "q"], 400, p=[0.5 + shift / 2, 0.5 - shift / 2]),
            }
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            snap = Report([DataDriftPreset()], include_tests=True).run(cur, ref).dict()
        theirs = {
            t["metric_config"]["params"]["column"]: t["status"] == "FAIL"
            for t in snap["tests"]
            if t["id"] == "drift"
        }
        ours = detect_drift(ReferenceProfile.from_data(ref), cur)
        assert {k: v.drifted for k, v in ours.features.items()} == theirs
