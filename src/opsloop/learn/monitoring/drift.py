"""Per-feature data drift and dataset drift share, with Evidently 0.7.23's default choice of test.

For each feature the test is chosen from the reference size ``n`` (non-missing rows of the
training data), the feature's kind, and ``u``, the number of distinct values in reference and
current together — the rule of Evidently's ``DataDriftPreset`` (``_get_default_stattest``):

=================  ===========================================  =============================
kind               ``n <= 1000``                                ``n > 1000``
=================  ===========================================  =============================
numeric, ``u > 5``  Kolmogorov-Smirnov, drift if ``p <= 0.05``   Wasserstein (normed), ``>= 0.1``
numeric, ``u <= 5`` chi-squared (``u > 2``) or Z-test, ``p < .05``  Jensen-Shannon, ``>= 0.1``
categorical        chi-squared (``u > 2``) or Z-test, ``p < .05``  Jensen-Shannon, ``>= 0.1``
=================  ===========================================  =============================

The statistics are in :mod:`opsloop.learn.monitoring.stattests`. Missing values (None, NaN,
+-inf) are dropped from the current window before testing, as Evidently drops them, and
counted in :attr:`FeatureDrift.n_missing`. Where Evidently raises (a column with nothing left
in the window, or missing from it) the feature is *untested*: ``method == "none"``,
``drifted`` False, and it is left out of the share. The dataset drifts when
``share = drifted / tested >= drift_share`` (default 0.5), Evidently's ``DatasetDriftMetric``.

Any test can be forced (``method=`` for all features, ``per_feature_method=`` for some);
``psi`` is the population stability index. On numeric features with more than 20 distinct
reference values, forced ``psi``, ``jensenshannon`` and ``chisquare`` use the profile's
reference-quantile bins (Evidently bins both samples together with Sturges' rule, which a
stored profile cannot do), so those three differ from Evidently there; the defaults do not.

>>> import numpy as np
>>> from opsloop.learn.monitoring.profile import ReferenceProfile
>>> rng = np.random.default_rng(0)
>>> abc = ["a", "b", "c"]
>>> ref = ReferenceProfile.from_data({"x": rng.normal(size=800), "c": rng.choice(abc, 800)})
>>> same = detect_drift(ref, {"x": rng.normal(size=300), "c": rng.choice(abc, 300)})
>>> same.features["x"].method, same.features["c"].method, same.drifted
('ks', 'chisquare', False)
>>> moved = detect_drift(ref, {"x": rng.normal(1.0, size=300), "c": ["d"] * 300})
>>> moved.features["x"].drifted, moved.features["c"].drifted, moved.share, moved.drifted
(True, True, 1.0, True)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from opsloop.learn.monitoring import stattests
from opsloop.learn.monitoring.profile import (
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    ReferenceProfile,
    category_keys,
    to_float_array,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "METHODS",
    "DatasetDrift",
    "FeatureDrift",
    "choose_method",
    "detect_drift",
    "feature_drift",
    "prediction_drift",
]

SMALL_REFERENCE = 1000  # reference rows up to which the p-value tests are used
FEW_DISTINCT = 5  # numeric features with at most this many distinct values are tested as counts

DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chisquare": 0.05,
    "z": 0.05,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.1,
}
METHODS = tuple(DEFAULT_THRESHOLDS)
P_VALUE_METHODS = frozenset({"ks", "chisquare", "z"})


@dataclass(frozen=True)
class FeatureDrift:
    """The drift test of one feature on one window.

    ``statistic`` is a p-value for ``ks``/``chisquare``/``z`` (small means drift) and a distance
    for ``wasserstein``/``jensenshannon``/``psi`` (large means drift); NaN when untested.
    """

    feature: str
    kind: str
    method: str
    statistic: float
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    n_missing: int
    n_unseen: int = 0  # current rows whose category the reference never had

    @property
    def tested(self) -> bool:
        """Whether a test ran (False for an empty or absent column)."""
        return self.method != "none"

    @property
    def is_p_value(self) -> bool:
        """Whether :attr:`statistic` is a p-value."""
        return self.method in P_VALUE_METHODS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN as None)."""
        d = asdict(self)
        if not math.isfinite(d["statistic"]):
            d["statistic"] = None
        return d


@dataclass(frozen=True)
class DatasetDrift:
    """Drift of every feature on one window, and the dataset decision."""

    features: dict[str, FeatureDrift]
    n_tested: int
    n_drifted: int
    share: float
    drift_share: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "features": {k: v.to_dict() for k, v in self.features.items()},
            "n_tested": self.n_tested,
            "n_drifted": self.n_drifted,
            "share": self.share,
            "drift_share": self.drift_share,
            "drifted": self.drifted,
        }


def _is_drift(method: str, statistic: float, threshold: float) -> bool:
    if not math.isfinite(statistic):
        return method not in P_VALUE_METHODS and statistic == math.inf
    if method == "ks":
        return statistic <= threshold
    if method in P_VALUE_METHODS:
        return statistic < threshold
    return statistic >= threshold


def _distinct_union(prof: ColumnProfile, cur_keys: Any, limit: int) -> int:
    """Distinct values in reference and current together, exact up to ``limit`` (then limit+1)."""
    if isinstance(prof, NumericProfile):
        if prof.few_values is None or prof.n_unique > limit:
            return limit + 1
        return len(set(prof.few_values) | set(np.unique(cur_keys).tolist()))
    return len(prof.counts.keys() | cur_keys.keys())


def choose_method(prof: ColumnProfile, n_distinct: int) -> str:
    """Evidently's default test for a feature, given the distinct count of both samples."""
    small = prof.n <= SMALL_REFERENCE
    if isinstance(prof, NumericProfile) and n_distinct > FEW_DISTINCT:
        return "ks" if small else "wasserstein"
    if small:
        return "chisquare" if n_distinct > 2 else "z"
    return "jensenshannon"


def _untested(prof: ColumnProfile, n_cur: int, n_missing: int, threshold: float) -> FeatureDrift:
    return FeatureDrift(
        prof.name, prof.kind, "none", math.nan, threshold, False, prof.n, n_cur, n_missing
    )


def _count_test(method: str, ref: Mapping[Any, int], cur: Mapping[Any, int], n_cur: int) -> float:
    keys = list(ref.keys() | cur.keys())
    r = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    c = np.array([cur.get(k, 0) for k in keys], dtype=np.float64)
    n_ref = r.sum()
    if method == "chisquare":
        return stattests.chisquare_pvalue(r, c)
    if method == "z":
        first = sorted(keys)[0]
        return stattests.z_pvalue(ref.get(first, 0), int(n_ref), cur.get(first, 0), n_cur)
    if method == "jensenshannon":
        return stattests.jensenshannon(r / n_ref, c / n_cur)
    if method == "psi":
        return stattests.psi(r / n_ref, c / n_cur)
    raise ValueError(f"{method} does not apply to categories")


def _numeric(
    prof: NumericProfile, values: Any, method: str | None, threshold: float | None
) -> FeatureDrift:
    raw = to_float_array(values)
    cur = raw[np.isfinite(raw)]
    m = int(cur.size)
    n_missing = int(raw.size - m)
    if m == 0 or prof.n == 0:
        return _untested(prof, m, n_missing, math.nan if threshold is None else threshold)
    if method is None:
        method = choose_method(prof, _distinct_union(prof, cur, FEW_DISTINCT))
    thr = DEFAULT_THRESHOLDS[method] if threshold is None else threshold
    if method == "ks":
        stat = stattests.ks_pvalue(prof.values, cur)
    elif method == "wasserstein":
        stat = stattests.wasserstein_sorted(prof.values, cur) / max(prof.std, 0.001)
    elif prof.few_values is not None:
        uniq, counts = np.unique(cur, return_counts=True)
        cur_counts = dict(zip(uniq.tolist(), counts.tolist(), strict=True))
        stat = _count_test(method, prof.few_values, cur_counts, m)
    elif method in ("psi", "jensenshannon", "chisquare"):
        cur_bins = np.bincount(
            np.searchsorted(prof.bin_edges, cur, side="right"), minlength=prof.bin_counts.size
        )
        if method == "chisquare":
            stat = stattests.chisquare_pvalue(prof.bin_counts, cur_bins)
        else:
            ref_share = prof.bin_counts / prof.bin_counts.sum()
            fn = stattests.psi if method == "psi" else stattests.jensenshannon
            stat = fn(ref_share, cur_bins / m)
    else:
        raise ValueError(f"{method} does not apply to numeric feature {prof.name!r}")
    drifted = _is_drift(method, stat, thr)
    return FeatureDrift(
        prof.name, "numeric", method, float(stat), thr, drifted, prof.n, m, n_missing
    )


def _categorical(
    prof: CategoricalProfile, values: Any, method: str | None, threshold: float | None
) -> FeatureDrift:
    keys = category_keys(values)
    m = len(keys)
    n_missing = len(values) - m
    if m == 0 or prof.n == 0:
        return _untested(prof, m, n_missing, math.nan if threshold is None else threshold)
    cur = Counter(keys)
    if method is None:
        method = choose_method(prof, _distinct_union(prof, cur, FEW_DISTINCT))
    if method in ("ks", "wasserstein"):
        raise ValueError(f"{method} does not apply to categorical feature {prof.name!r}")
    thr = DEFAULT_THRESHOLDS[method] if threshold is None else threshold
    stat = _count_test(method, prof.counts, cur, m)
    unseen = sum(c for k, c in cur.items() if k not in prof.counts)
    drifted = _is_drift(method, stat, thr)
    return FeatureDrift(
        prof.name, "categorical", method, float(stat), thr, drifted, prof.n, m, n_missing, unseen
    )


def feature_drift(
    prof: ColumnProfile, values: Any, *, method: str | None = None, threshold: float | None = None
) -> FeatureDrift:
    """Test one feature's current values (any array-like; missing values dropped and counted)."""
    if method is not None and method not in DEFAULT_THRESHOLDS:
        raise ValueError(f"unknown drift method {method!r}; one of {', '.join(METHODS)}")
    if values is None:
        return _untested(prof, 0, 0, math.nan if threshold is None else threshold)
    if isinstance(prof, NumericProfile):
        return _numeric(prof, values, method, threshold)
    return _categorical(prof, values, method, threshold)


def _current_columns(current: Any) -> Mapping[str, Any]:
    if isinstance(current, Mapping):
        return current
    if hasattr(current, "columns") and hasattr(current, "__getitem__"):  # a DataFrame
        return {str(c): current[c] for c in current.columns}
    raise TypeError("expected a pandas DataFrame or a mapping of column name to values")


def detect_drift(
    profile: ReferenceProfile,
    current: Any,
    *,
    columns: list[str] | None = None,
    method: str | None = None,
    threshold: float | None = None,
    per_feature_method: Mapping[str, str] | None = None,
    per_feature_threshold: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
) -> DatasetDrift:
    """Test every profiled feature of ``current`` (a DataFrame or a mapping of columns).

    ``method``/``threshold`` override Evidently's default test and its threshold for every
    feature, ``per_feature_*`` for single ones. A profiled feature absent from ``current`` is
    untested.
    """
    data = _current_columns(current)
    per_method = per_feature_method or {}
    per_thr = per_feature_threshold or {}
    results: dict[str, FeatureDrift] = {}
    for name in columns if columns is not None else list(profile.columns):
        prof = profile.columns[name]
        results[name] = feature_drift(
            prof,
            data.get(name),
            method=per_method.get(name, method),
            threshold=per_thr.get(name, threshold),
        )
    tested = [r for r in results.values() if r.tested]
    n_drifted = sum(r.drifted for r in tested)
    share = n_drifted / len(tested) if tested else 0.0
    return DatasetDrift(
        features=results,
        n_tested=len(tested),
        n_drifted=n_drifted,
        share=share,
        drift_share=drift_share,
        drifted=bool(tested) and share >= drift_share,
    )


def prediction_drift(
    profile: ReferenceProfile,
    predictions: Any,
    *,
    method: str | None = None,
    threshold: float | None = None,
) -> FeatureDrift:
    """Drift of the model's predictions against the reference predictions in ``profile``."""
    if profile.prediction is None:
        raise ValueError("the profile holds no reference predictions")
    return feature_drift(profile.prediction, predictions, method=method, threshold=threshold)
