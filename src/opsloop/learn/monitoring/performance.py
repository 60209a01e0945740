"""Model quality on labelled predictions: accuracy, F1, ROC AUC; MAE, RMSE.

* accuracy ``= mean(y == y_hat)``.
* F1 ``= 2 TP / (2 TP + FP + FN)`` for the positive class when the labels are binary (the
  positive label given, or ``1``/``True`` found among them), else the macro average of the
  per-class F1 over every class seen in ``y`` or ``y_hat`` (a class never predicted nor present
  scores 0, as scikit-learn's ``zero_division=0``).
* ROC AUC (binary, from scores) ``= (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)``, with
  ``R_pos`` the sum of the positives' ranks among all scores (ties share their mean rank): the
  Mann-Whitney form, equal to the area under the ROC curve. NaN when one class is absent.
* MAE ``= mean(|y - y_hat|)``, RMSE ``= sqrt(mean((y - y_hat)^2))``.

Labels are compared by their canonical category key (``1``, ``1.0`` and ``"1"`` are one class).

>>> classification_metrics([1, 0, 1, 1], [1, 0, 0, 1], scores=[0.9, 0.2, 0.4, 0.8])
{'accuracy': 0.75, 'f1': 0.8, 'roc_auc': 1.0}
>>> regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
{'mae': 0.6666666666666666, 'rmse': 1.1547005383792515}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from opsloop.learn.monitoring.profile import category_key, to_float_array

__all__ = ["classification_metrics", "f1_score", "regression_metrics", "roc_auc"]

_POSITIVE_GUESSES = ("1", "True")


def _keys(values: Sequence[Any]) -> list[str | None]:
    return [category_key(v) for v in values]


def f1_score(y_true: Sequence[Any], y_pred: Sequence[Any], positive: Any = None) -> float:
    """Binary F1 for ``positive`` (or a guessed ``1``/``True``), else macro F1."""
    t = _keys(y_true)
    p = _keys(y_pred)
    classes = sorted({k for k in (*t, *p) if k is not None})
    pos = category_key(positive) if positive is not None else None
    if pos is None and len(classes) <= 2:
        pos = next((g for g in _POSITIVE_GUESSES if g in classes), None)
    targets = [pos] if pos is not None else classes
    scores = []
    for c in targets:
        tp = sum(1 for a, b in zip(t, p, strict=True) if a == c and b == c)
        fp = sum(1 for a, b in zip(t, p, strict=True) if a != c and b == c)
        fn = sum(1 for a, b in zip(t, p, strict=True) if a == c and b != c)
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores)) if scores else math.nan


def roc_auc(y_true: Sequence[Any], scores: Sequence[float], positive: Any = None) -> float:
    """Area under the ROC curve of ``scores`` for the positive class (NaN if a class is absent)."""
    from scipy.stats import rankdata

    t = _keys(y_true)
    s = to_float_array(list(scores))
    keep = np.isfinite(s) & np.array([k is not None for k in t], dtype=bool)
    classes = sorted({k for k, ok in zip(t, keep, strict=True) if ok})
    pos = category_key(positive) if positive is not None else None
    if pos is None:
        pos = next((g for g in _POSITIVE_GUESSES if g in classes), None)
    if pos is None or len(classes) != 2:
        return math.nan
    is_pos = np.array([k == pos for k in t], dtype=bool)[keep]
    ranks = rankdata(s[keep])
    n_pos = int(is_pos.sum())
    n_neg = int(is_pos.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return math.nan
    return float((ranks[is_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    *,
    scores: Sequence[float | None] | None = None,
    positive: Any = None,
) -> dict[str, float]:
    """Accuracy and F1, plus ROC AUC when every row has a score and both classes occur."""
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    if not y_true:
        return {}
    t = _keys(y_true)
    p = _keys(y_pred)
    out = {
        "accuracy": sum(1 for a, b in zip(t, p, strict=True) if a == b) / len(t),
        "f1": f1_score(y_true, y_pred, positive),
    }
    if scores is not None and all(s is not None for s in scores):
        auc = roc_auc(y_true, [float(s) for s in scores if s is not None], positive)
        if math.isfinite(auc):
            out["roc_auc"] = auc
    return out


def regression_metrics(y_true: Sequence[Any], y_pred: Sequence[Any]) -> dict[str, float]:
    """MAE and RMSE over the rows where both values are finite numbers."""
    t = to_float_array(list(y_true))
    p = to_float_array(list(y_pred))
    ok = np.isfinite(t) & np.isfinite(p)
    if not ok.any():
        return {}
    err = t[ok] - p[ok]
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(math.sqrt(np.mean(err * err)))}
