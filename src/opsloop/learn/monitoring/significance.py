"""Is a window's drift distance more than sampling noise? A parametric bootstrap on the reference.

Evidently's default rule (see :mod:`~opsloop.learn.monitoring.drift`) judges a distance test -
normed Wasserstein, Jensen-Shannon - by a fixed threshold (0.1) whatever the window size. A
window of ``m`` rows drawn from the reference distribution itself is at some distance from it;
for small ``m`` that distance often exceeds 0.1 (normed Wasserstein of 100 standard normal draws
is about 0.1 on average), so a stable feature "drifts" in a large share of small windows.

:class:`NullDistances` draws ``draws`` windows of ``m`` rows from the reference profile (numeric:
uniformly from its sorted values, which are the values or equal-mass bin means; few-valued and
categorical: by its counts) and runs the same test on each, giving the distance's distribution
under "no drift" for that window size::

    p = (1 + #{null distances >= d}) / (draws + 1)

the Monte Carlo p-value of the observed distance ``d``. A test that already gives a p-value
(KS, chi-squared, z) is returned as is. Distributions are cached per (feature, method, m); the
draws are seeded, so the answer is reproducible.

>>> import numpy as np
>>> from opsloop.learn.monitoring.drift import feature_drift
>>> from opsloop.learn.monitoring.profile import NumericProfile
>>> rng = np.random.default_rng(0)
>>> prof = NumericProfile.from_values("x", rng.normal(size=5000))
>>> null = NullDistances(draws=200)
>>> same = feature_drift(prof, rng.normal(size=100))
>>> same.method, same.drifted or True, null.pvalue(prof, same) > 0.01
('wasserstein', True, True)
>>> moved = feature_drift(prof, rng.normal(0.8, size=100))
>>> moved.drifted, null.pvalue(prof, moved) < 0.01
(True, True)
"""

from __future__ import annotations

import numpy as np

from opsloop.learn.monitoring.drift import FeatureDrift, feature_drift
from opsloop.learn.monitoring.profile import CategoricalProfile, ColumnProfile, NumericProfile

__all__ = ["NullDistances"]


class NullDistances:
    """Seeded bootstrap distributions of drift distances under "no drift", cached."""

    def __init__(self, draws: int = 200, seed: int = 0, max_cached: int = 256) -> None:
        if draws < 10:
            raise ValueError("draws must be >= 10")
        self.draws = int(draws)
        self.seed = int(seed)
        self.max_cached = int(max_cached)
        self._cache: dict[tuple[str, str, int], np.ndarray] = {}

    def pvalue(self, prof: ColumnProfile, res: FeatureDrift) -> float:
        """The chance that sampling noise alone gives ``res``'s statistic (its own p-value for
        a p-value test; 1.0 when untested)."""
        if not res.tested:
            return 1.0
        if res.is_p_value:
            return float(res.statistic)
        null = self.distances(prof, res.method, res.n_current)
        beyond = int(null.size - np.searchsorted(null, res.statistic, side="left"))
        return (1.0 + beyond) / (null.size + 1.0)

    def distances(self, prof: ColumnProfile, method: str, m: int) -> np.ndarray:
        """Sorted statistics of ``draws`` windows of ``m`` rows drawn from the reference."""
        key = (prof.name, method, int(m))
        got = self._cache.get(key)
        if got is not None:
            return got
        rng = np.random.default_rng([self.seed, int(m)])
        values, weights = _support(prof)
        stats = np.sort(
            np.array(
                [
                    feature_drift(
                        prof, rng.choice(values, size=m, p=weights), method=method
                    ).statistic
                    for _ in range(self.draws)
                ],
                dtype=np.float64,
            )
        )
        if len(self._cache) >= self.max_cached:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = stats
        return stats


def _support(prof: ColumnProfile) -> tuple[np.ndarray, np.ndarray | None]:
    """What a reference row can be, and with which probability (``None``: uniform)."""
    if isinstance(prof, CategoricalProfile):
        keys = np.array(list(prof.counts), dtype=object)
        counts = np.array(list(prof.counts.values()), dtype=np.float64)
        return keys, counts / counts.sum()
    assert isinstance(prof, NumericProfile)
    if prof.few_values is not None:
        vals = np.array(list(prof.few_values), dtype=np.float64)
        counts = np.array(list(prof.few_values.values()), dtype=np.float64)
        return vals, counts / counts.sum()
    return np.asarray(prof.values, dtype=np.float64), None
