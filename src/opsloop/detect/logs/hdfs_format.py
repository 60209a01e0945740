"""Pure helpers for the HDFS block-session format (``BlockId,Label,EventSequence`` rows).

The training path reads only ``BlockId`` and ``EventSequence`` (:func:`sessions_from_rows`), never
``Label``; labels are read separately (:func:`labels_from_rows`) and only to score predictions.
The held-out split is a deterministic hash of the block id (:func:`is_test_block`).

>>> rows = [{"BlockId": "blk_1", "Label": "1", "EventSequence": "T6 T16"}]
>>> sessions_from_rows(rows)
[('blk_1', ['T6', 'T16'])]
>>> precision_recall_f1([1, 0, 1, 1], [1, 0, 0, 1])
(1.0, 0.6666666666666666, 0.8)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opsloop.detect.logs.count_rules import CountRuleModel

__all__ = [
    "is_test_block",
    "labels_from_rows",
    "precision_recall_f1",
    "score_sessions",
    "sessions_from_rows",
    "train_count_rules",
]


def sessions_from_rows(rows: Iterable[Mapping[str, str]]) -> list[tuple[str, list[str]]]:
    """``(block id, template ids)`` per row; reads ``BlockId`` and ``EventSequence`` only."""
    return [(r["BlockId"], r["EventSequence"].split()) for r in rows]


def labels_from_rows(rows: Iterable[Mapping[str, str]]) -> dict[str, int] | None:
    """``block id -> label`` (1 = anomalous) when the rows carry a ``Label`` column, else None."""
    out: dict[str, int] = {}
    for r in rows:
        label = r.get("Label")
        if label is None or label == "":
            return None
        out[r["BlockId"]] = int(label)
    return out


def is_test_block(block_id: str, test_fraction: float = 0.5, salt: str = "opsloop-hdfs") -> bool:
    """Deterministic held-out membership: ``sha256(salt + id)`` read as a number in [0, 1).

    >>> is_test_block("blk_1") == is_test_block("blk_1")
    True
    """
    h = hashlib.sha256((salt + block_id).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < test_fraction


def train_count_rules(
    sessions: Iterable[tuple[str, Sequence[str]]], **params: Any
) -> CountRuleModel:
    """Learn a :class:`CountRuleModel` from unlabelled ``(key, events)`` sessions."""
    model = CountRuleModel(**params)
    for _, events in sessions:
        model.learn_one(events)
    return model


def score_sessions(
    model: Any, sessions: Iterable[tuple[str, Sequence[str]]]
) -> list[tuple[str, float, int]]:
    """``(key, score, predicted)`` per session for any model with ``score_one``/``predict_one``."""
    return [(k, model.score_one(ev), int(model.predict_one(ev))) for k, ev in sessions]


def precision_recall_f1(y_true: Sequence[int], y_pred: Sequence[int]) -> tuple[float, float, float]:
    """Precision, recall and F1 of the positive (anomalous) class."""
    tp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t and p)
    fp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if not t and p)
    fn = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t and not p)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
