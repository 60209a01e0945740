"""Evaluate session models on labelled sessions and decide a promotion.

Only sessions with a label count. The figures are those of the anomalous class (precision,
recall, F1), plus the counts behind them so that a reader can recompute them.

A new model replaces the champion when its F1 on the *same* evaluation set is higher by more
than ``margin``: ``f1_new > f1_champion + margin``. With no champion there is nothing to beat and
the new model is promoted. It is not promoted when the two cannot be compared (no labelled
session in the evaluation set, or a champion speaking another event vocabulary): a person can
still promote it by hand.

>>> decide_promotion({"f1": 0.71, "n": 40}, {"f1": 0.69, "n": 40}, 0.01)
(True, 'f1 0.7100 > 0.6900 + margin 0.01')
>>> decide_promotion({"f1": 0.69, "n": 40}, {"f1": 0.69, "n": 40}, 0.01)
(False, 'f1 0.6900 <= 0.6900 + margin 0.01')
>>> decide_promotion({"f1": 0.5, "n": 40}, None, 0.01)
(True, 'no champion yet; f1 0.5000 on 40 labelled sessions')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opsloop.detect.logs.hdfs_format import precision_recall_f1

__all__ = ["decide_promotion", "evaluate_sessions"]


def evaluate_sessions(model: Any, sessions: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Precision, recall, F1 and counts of ``model.predict_one`` on the labelled sessions.

    >>> from opsloop.detect.logs.count_rules import CountRuleModel
    >>> m = CountRuleModel()
    >>> for _ in range(50):
    ...     m.learn_one(["a", "b"])
    >>> r = evaluate_sessions(m, [["k1", ["a", "b"], 0], ["k2", ["a"], 1], ["k3", ["a"], None]])
    >>> r["f1"], r["n"], r["tp"], r["fp"]
    (1.0, 2, 1, 0)
    """
    y_true: list[int] = []
    y_pred: list[int] = []
    for _key, events, label in sessions:
        if label is None:
            continue
        y_true.append(int(label))
        y_pred.append(int(model.predict_one(events)))
    p, r, f1 = precision_recall_f1(y_true, y_pred)
    tp = sum(1 for t, q in zip(y_true, y_pred, strict=True) if t and q)
    fp = sum(1 for t, q in zip(y_true, y_pred, strict=True) if q and not t)
    return {
        "precision": p,
        "recall": r,
        "f1": f1,
        "n": len(y_true),
        "anomalous": sum(y_true),
        "predicted": sum(y_pred),
        "tp": tp,
        "fp": fp,
        "fn": sum(y_true) - tp,
    }


def decide_promotion(
    new: Mapping[str, Any], champion: Mapping[str, Any] | None, margin: float
) -> tuple[bool, str]:
    """``(promote, reason)`` for a new model's report against the champion's (``None``: none).

    A champion report with ``comparable`` false (another vocabulary) carries its ``reason``.
    """
    if champion is None:
        if not new.get("n"):
            return True, "no champion yet; no labelled sessions to evaluate on"
        return True, f"no champion yet; f1 {new['f1']:.4f} on {new['n']} labelled sessions"
    if champion.get("comparable") is False:
        return False, f"not comparable with the champion: {champion.get('reason', '')}".rstrip()
    if not new.get("n"):
        return False, "no labelled sessions in the evaluation set: cannot beat the champion"
    a, b = float(new["f1"]), float(champion["f1"])
    if a > b + margin:
        return True, f"f1 {a:.4f} > {b:.4f} + margin {margin:g}"
    return False, f"f1 {a:.4f} <= {b:.4f} + margin {margin:g}"
