"""Scoring of log template miners: grouping accuracy (GA) and parsing accuracy (PA).

Both follow the log parsing literature (LogPAI / Loghub benchmarks):

- **GA**: a line is correct only if the set of lines its predicted group holds is exactly the
  set of lines of its ground-truth group. GA = correct lines / all lines.
- **PA**: a line is correct if its predicted template string equals the ground-truth template
  exactly (``<*>`` marks a variable). PA = correct lines / all lines.

Pure functions over parallel sequences; no I/O.

>>> grouping_accuracy(["a", "a", "b"], [1, 1, 2])
1.0
>>> grouping_accuracy(["a", "a", "b"], [1, 1, 1])
0.0
>>> parsing_accuracy(["x <*>", "y"], ["x <*>", "z"])
0.5
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence

__all__ = ["grouping_accuracy", "parsing_accuracy"]


def grouping_accuracy(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Share of lines whose predicted group equals their true group as a set of lines.

    Algorithm: group line indices by predicted label; a predicted group is correct when all its
    lines share one true label and that true label has exactly as many lines in total.

    >>> grouping_accuracy(["a", "b", "b", "c"], [0, 1, 1, 1])
    0.25
    """
    if len(truth) != len(predicted):
        raise ValueError("truth and predicted must have the same length")
    if not truth:
        return 0.0
    true_size: dict[Hashable, int] = defaultdict(int)
    for t in truth:
        true_size[t] += 1
    groups: dict[Hashable, list[Hashable]] = defaultdict(list)
    for t, p in zip(truth, predicted, strict=True):
        groups[p].append(t)
    correct = 0
    for members in groups.values():
        first = members[0]
        if true_size[first] == len(members) and all(t == first for t in members):
            correct += len(members)
    return correct / len(truth)


def parsing_accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Share of lines whose predicted template string equals the true template exactly.

    >>> parsing_accuracy(["a <*>"], ["a <*>"])
    1.0
    """
    if len(truth) != len(predicted):
        raise ValueError("truth and predicted must have the same length")
    if not truth:
        return 0.0
    return sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)
