"""Two-sample drift statistics, each as Evidently 0.7.23 computes it, on plain numpy arrays.

Reference ``r`` (``n`` values), current ``c`` (``m`` values); for counts, ``R_k`` and ``C_k`` are
the reference and current counts of category ``k`` over the union of both samples' categories.

* **Kolmogorov-Smirnov** (numeric, small reference): ``D = sup_x |F_r(x) - F_c(x)|``; the
  two-sided p-value is scipy's ``ks_2samp`` (exact for ``max(n, m) <= 10000``, asymptotic
  otherwise). Drift when ``p <= 0.05``.
* **Chi-squared goodness of fit** (categorical, small reference): expected ``E_k = R_k * m / n``,
  ``X2 = sum_k (C_k - E_k)^2 / E_k`` with ``K - 1`` degrees of freedom; a category never seen in
  the reference has ``E_k = 0``, so ``X2 = inf`` and ``p = 0``. Drift when ``p < 0.05``.
* **Two-proportion Z-test** (binary, small reference): with ``k0`` the smallest category,
  ``p1 = 1 - R_k0/n``, ``p2 = 1 - C_k0/m``, pooled ``P = (n p1 + m p2)/(n + m)``,
  ``z = (p1 - p2) / sqrt(P (1 - P) (1/n + 1/m))`` and ``p = 2 (1 - Phi(|z|))``; ``p = 1`` when both
  samples hold the same single value. Drift when ``p < 0.05``.
* **Normed Wasserstein-1** (numeric, large reference):
  ``W = integral |F_r(x) - F_c(x)| dx / max(std(r), 0.001)`` (population std). Drift when
  ``W >= 0.1``.
* **Jensen-Shannon distance** (categorical, large reference): with ``p = R/n``, ``q = C/m`` and
  ``M = (p + q)/2``, ``JS = sqrt((KL(p || M) + KL(q || M)) / 2)`` in nats (0 to ``sqrt(ln 2)``).
  Drift when ``JS >= 0.1``.
* **Population stability index** (optional): ``PSI = sum_k (p_k - q_k) ln(p_k / q_k)`` over bins
  or categories, empty cells filled as Evidently does (``1e-4``, or ``min/1e6`` when the smallest
  non-empty share is below ``1e-4``). Drift when ``PSI >= 0.1`` (0.25 is the usual "major" mark).

>>> import numpy as np
>>> round(wasserstein_sorted(np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])), 6)
1.0
>>> round(jensenshannon(np.array([1.0, 0.0]), np.array([0.0, 1.0])) ** 2, 6)  # ln 2
0.693147
>>> chisquare_pvalue(np.array([10.0, 10.0, 0.0]), np.array([5.0, 5.0, 5.0]))
0.0
>>> round(z_pvalue(50, 100, 50, 100), 6)
1.0
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "chisquare_pvalue",
    "fill_zeroes",
    "jensenshannon",
    "ks_pvalue",
    "psi",
    "wasserstein_sorted",
    "z_pvalue",
]


def ks_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sided two-sample Kolmogorov-Smirnov p-value (scipy ``ks_2samp``, method ``auto``)."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(reference, current).pvalue)


def chisquare_pvalue(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Chi-squared goodness-of-fit p-value of current counts against scaled reference counts.

    Both arrays are aligned on the union of categories. ``p = 0`` when the current sample holds
    a category the reference never had (an infinite statistic), as with ``scipy.stats.chisquare``.
    """
    from scipy.stats import chi2

    ref = np.asarray(ref_counts, dtype=np.float64)
    cur = np.asarray(cur_counts, dtype=np.float64)
    expected = ref * (cur.sum() / ref.sum())
    if np.any((expected == 0) & (cur > 0)):
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(expected > 0, (cur - expected) ** 2 / expected, 0.0)
    return float(chi2.sf(float(terms.sum()), len(ref) - 1))


def z_pvalue(ref_first: int, n_ref: int, cur_first: int, n_cur: int) -> float:
    """Two-sided p-value of the two-proportion Z-test on the share of the *other* category.

    ``ref_first``/``cur_first`` count the first (smallest) category in each sample.
    """
    if n_ref == 0 or n_cur == 0:
        return math.nan
    p1 = 1.0 - ref_first / n_ref
    p2 = 1.0 - cur_first / n_cur
    pooled = (p1 * n_ref + p2 * n_cur) / (n_ref + n_cur)
    var = pooled * (1.0 - pooled) * (1.0 / n_ref + 1.0 / n_cur)
    if var <= 0.0:
        return 1.0
    z = (p1 - p2) / math.sqrt(var)
    # 2 * (1 - Phi(|z|)), written as Evidently writes it (1 - cdf, not the survival function)
    return 2.0 * (1.0 - 0.5 * math.erfc(-abs(z) / math.sqrt(2.0)))


def wasserstein_sorted(ref_sorted: np.ndarray, current: np.ndarray) -> float:
    """First Wasserstein distance between two samples, the reference already sorted.

    ``W1 = sum_i |F_r(x_i) - F_c(x_i)| (x_{i+1} - x_i)`` over the pooled sorted values, the
    formula of ``scipy.stats.wasserstein_distance`` for equally weighted samples.
    """
    cur_sorted = np.sort(current)
    pooled = np.concatenate((ref_sorted, cur_sorted))
    pooled.sort(kind="mergesort")
    deltas = np.diff(pooled)
    at = pooled[:-1]
    f_ref = np.searchsorted(ref_sorted, at, side="right") / ref_sorted.size
    f_cur = np.searchsorted(cur_sorted, at, side="right") / cur_sorted.size
    return float(np.sum(np.abs(f_ref - f_cur) * deltas))


def jensenshannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log), as ``scipy.spatial.distance.jensenshannon``."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    js = float(np.sum(left) + np.sum(right)) / 2.0
    return math.sqrt(max(js, 0.0))


def fill_zeroes(shares: np.ndarray) -> np.ndarray:
    """Replace empty cells by a small share, Evidently's ``feel_zeroes`` rule (for PSI)."""
    out = np.array(shares, dtype=np.float64)
    nonzero = out[out != 0]
    if nonzero.size == 0:
        return out
    smallest = float(nonzero.min())
    out[out == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return out


def psi(ref_shares: np.ndarray, cur_shares: np.ndarray) -> float:
    """Population stability index of two aligned share vectors (empty cells filled first)."""
    r = fill_zeroes(ref_shares)
    c = fill_zeroes(cur_shares)
    return float(np.sum((r - c) * np.log(r / c)))
