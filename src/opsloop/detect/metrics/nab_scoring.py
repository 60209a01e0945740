"""A faithful, pure implementation of the Numenta Anomaly Benchmark (NAB v1.1) scorer.

Rules (NAB's sweeper, reproduced exactly):

* A file with ``n`` rows has ``min(floor(0.15 n), 750)`` probationary rows; they are never
  detections.
* Every row ``i`` gets a weight. Inside a window (rows ``l..r`` inclusive, width ``w = r - l + 1``)
  the position is ``p = -(r - i + 1) / w`` and the weight ``tp * sig(p) / sig(-1)``. Outside every
  window the weight is ``-fp`` before the first window ends, and ``fp * sig(|r' - i| / (w' - 1))``
  after it, with ``r'``/``w'`` the right index and width of the last window that ended.
  ``sig(p) = 2 / (1 + exp(5 p)) - 1`` (``-1`` for ``p > 3``).
* At threshold ``t`` a non-probationary row with ``score >= t`` is a detection;
  ``S(t) = sum_windows(max weight of its detections, or -fn) + sum(weights of detections outside)``.
* The threshold is chosen among all distinct scores of the corpus (and ``1.1``: "no detection") to
  maximise the corpus total; the result is normalised as ``100 (S - S_null) / (S_perfect - S_null)``
  with ``S_null = -fn * windows`` and ``S_perfect = tp * windows``.

Everything here is pure (no I/O); timestamps are plain numbers (e.g. epoch seconds).

>>> round(scaled_sigmoid(-1.0), 5), scaled_sigmoid(0.0), scaled_sigmoid(4.0)
(0.98661, 0.0, -1.0)
>>> probationary_length(4032), probationary_length(10320)
(604, 750)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PROFILES",
    "CorpusScore",
    "FileLabels",
    "Profile",
    "file_weights",
    "normalised_score",
    "probationary_length",
    "scaled_sigmoid",
    "score_corpus",
    "score_file_at_threshold",
    "sweep_thresholds",
    "window_indices",
]


@dataclass(frozen=True)
class Profile:
    """NAB cost matrix: reward of a true positive, costs of a false positive and a miss.

    >>> PROFILES["standard"]
    Profile(tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
    """

    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile(1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile(1.0, 0.11, 2.0),
}


def scaled_sigmoid(p: float) -> float:
    """NAB's scaled sigmoid: ``-1`` if ``p > 3`` else ``2 / (1 + exp(5 p)) - 1``."""
    if p > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * p)) - 1.0


def probationary_length(n_rows: int, probation_percent: float = 0.15) -> int:
    """Rows at the head of a file that are never scored: ``min(floor(0.15 n), 0.15 * 5000)``."""
    return int(min(math.floor(probation_percent * n_rows), probation_percent * 5000))


def window_indices(
    timestamps: Sequence[float] | np.ndarray, windows: Sequence[tuple[float, float]]
) -> list[tuple[int, int]]:
    """Map ``(start, end)`` window times to inclusive row indices ``(l, r)``.

    ``l`` is the first row at or after ``start``, ``r`` the last row at or before ``end``.

    >>> window_indices([0, 10, 20, 30, 40], [(10, 30)])
    [(1, 3)]
    """
    ts = np.asarray(timestamps, dtype=float)
    out: list[tuple[int, int]] = []
    for start, end in windows:
        left = int(np.searchsorted(ts, start, side="left"))
        right = int(np.searchsorted(ts, end, side="right")) - 1
        if right < left:
            raise ValueError(f"window {start}..{end} holds no rows")
        out.append((left, right))
    return sorted(out)


def file_weights(
    n_rows: int, windows: Sequence[tuple[int, int]], profile: Profile
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row NAB weights and window ids (``-1`` outside every window) for one file.

    >>> w, ids = file_weights(8, [(2, 5)], Profile(1.0, 0.11, 1.0))
    >>> [round(float(x), 3) for x in w]
    [-0.11, -0.11, 1.0, 0.967, 0.86, 0.562, -0.075, -0.102]
    >>> ids.tolist()
    [-1, -1, 0, 0, 0, 0, -1, -1]
    """
    sig_m1 = scaled_sigmoid(-1.0)
    weights = np.empty(n_rows, dtype=float)
    ids = np.full(n_rows, -1, dtype=np.int64)
    ordered = sorted(windows)
    k = 0
    prev_right: int | None = None
    prev_width = 0.0
    for i in range(n_rows):
        while k < len(ordered) and ordered[k][1] < i:
            prev_right, prev_width = ordered[k][1], float(ordered[k][1] - ordered[k][0] + 1)
            k += 1
        if k < len(ordered) and ordered[k][0] <= i <= ordered[k][1]:
            left, right = ordered[k]
            width = float(right - left + 1)
            weights[i] = profile.tp_weight * scaled_sigmoid(-(right - i + 1) / width) / sig_m1
            ids[i] = k
        elif prev_right is None:
            weights[i] = -profile.fp_weight
        else:
            denom = prev_width - 1.0
            pos = abs(prev_right - i) / denom if denom > 0 else math.inf
            weights[i] = profile.fp_weight * scaled_sigmoid(pos)
    return weights, ids


@dataclass(frozen=True)
class FileLabels:
    """Row count and inclusive window row indices of one corpus file."""

    n_rows: int
    windows: tuple[tuple[int, int], ...]


def score_file_at_threshold(
    scores: Sequence[float] | np.ndarray,
    windows: Sequence[tuple[int, int]],
    profile: Profile,
    threshold: float,
) -> float:
    """Raw NAB score ``S(t)`` of one file at a fixed threshold (the direct definition).

    >>> score_file_at_threshold([0.0] * 10, [(6, 7)], PROFILES["standard"], 0.5)
    -1.0
    """
    arr = np.asarray(scores, dtype=float)
    n = len(arr)
    weights, ids = file_weights(n, windows, profile)
    detect = arr >= threshold
    detect[: probationary_length(n)] = False
    total = 0.0
    for k in range(len(windows)):
        hit = detect & (ids == k)
        total += float(weights[hit].max()) if hit.any() else -profile.fn_weight
    total += float(weights[detect & (ids < 0)].sum())
    return total


def sweep_thresholds(
    files: Sequence[tuple[np.ndarray, FileLabels]], profile: Profile
) -> tuple[np.ndarray, np.ndarray]:
    """``(thresholds, S(t))`` over every distinct score of the corpus plus ``1.1``, descending.

    Rows are added in descending score order; a window's contribution moves from ``-fn`` to the
    largest weight detected in it, detections outside windows add their (negative) weight.
    """
    all_scores: list[np.ndarray] = []
    all_weights: list[np.ndarray] = []
    all_ids: list[np.ndarray] = []
    offset = 0
    for scores, labels in files:
        arr = np.asarray(scores, dtype=float)
        if len(arr) != labels.n_rows:
            raise ValueError("scores and labels disagree on the number of rows")
        weights, ids = file_weights(labels.n_rows, labels.windows, profile)
        start = probationary_length(labels.n_rows)
        gid = np.where(ids >= 0, ids + offset, -1)
        all_scores.append(arr[start:])
        all_weights.append(weights[start:])
        all_ids.append(gid[start:])
        offset += len(labels.windows)
    n_windows = offset
    s = np.concatenate(all_scores) if all_scores else np.empty(0)
    w = np.concatenate(all_weights) if all_weights else np.empty(0)
    g = np.concatenate(all_ids) if all_ids else np.empty(0, dtype=np.int64)
    order = np.argsort(-s, kind="stable")
    s, w, g = s[order], w[order], g[order]
    best = np.full(n_windows, -profile.fn_weight)
    total = -profile.fn_weight * n_windows
    thresholds = [1.1]
    values = [total]
    i = 0
    n = len(s)
    while i < n:
        t = s[i]
        while i < n and s[i] == t:
            if g[i] < 0:
                total += w[i]
            elif w[i] > best[g[i]]:
                total += w[i] - best[g[i]]
                best[g[i]] = w[i]
            i += 1
        thresholds.append(float(t))
        values.append(total)
    return np.asarray(thresholds), np.asarray(values)


def normalised_score(raw: float, n_windows: int, profile: Profile) -> float:
    """``100 (S - S_null) / (S_perfect - S_null)``; null = ``-fn`` per window, perfect = ``tp``.

    >>> normalised_score(0.0, 4, PROFILES["standard"])
    50.0
    """
    null = -profile.fn_weight * n_windows
    perfect = profile.tp_weight * n_windows
    return 100.0 * (raw - null) / (perfect - null)


@dataclass(frozen=True)
class CorpusScore:
    """Result of scoring a corpus under one profile at its optimal threshold."""

    profile: str
    threshold: float
    raw: float
    normalised: float
    n_windows: int
    true_positives: int
    false_positives: int
    false_negatives: int


def score_corpus(
    results: Mapping[str, np.ndarray | Sequence[float]],
    labels: Mapping[str, FileLabels],
    profile_name: str = "standard",
) -> CorpusScore:
    """Score a detector's per-row anomaly scores on a labelled corpus as NAB does.

    >>> labels = {"a": FileLabels(20, ((10, 13),))}
    >>> scores = {"a": [0.0] * 10 + [1.0] + [0.0] * 9}
    >>> r = score_corpus(scores, labels)
    >>> (r.threshold, r.true_positives, r.false_positives, r.normalised)
    (1.0, 1, 0, 100.0)
    """
    profile = PROFILES[profile_name]
    names = sorted(labels)
    files = [(np.asarray(results[name], dtype=float), labels[name]) for name in names]
    thresholds, values = sweep_thresholds(files, profile)
    k = int(np.argmax(values))  # first maximum: the highest threshold reaching it
    threshold = float(thresholds[k])
    n_windows = sum(len(labels[name].windows) for name in names)
    tp = fp = 0
    for scores, lab in files:
        det = scores >= threshold
        det[: probationary_length(lab.n_rows)] = False
        _, ids = file_weights(lab.n_rows, lab.windows, profile)
        tp += len(set(ids[det & (ids >= 0)].tolist()))
        fp += int((det & (ids < 0)).sum())
    return CorpusScore(
        profile=profile_name,
        threshold=threshold,
        raw=float(values[k]),
        normalised=normalised_score(float(values[k]), n_windows, profile),
        n_windows=n_windows,
        true_positives=tp,
        false_positives=fp,
        false_negatives=n_windows - tp,
    )
