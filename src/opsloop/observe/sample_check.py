"""Validate metric samples before they are stored.

:func:`check_samples` splits a batch into the samples that may be stored and one
:class:`Rejection` (a short rendering of the sample and a reason) per sample that may not.
A sample is rejected when:

* it is not a :class:`~opsloop.store.telemetry.metrics.MetricSample`;
* its value is not a real number (a string, a bool, ``None``…), or is NaN or ±infinity;
* its timestamp is not a finite number, lies more than ``max_future_s`` ahead of ``now``
  (default 10 minutes), or is older than the retention horizon ``retention_s`` (default 30 days,
  the default of ``retention.metrics_days``; ``None`` disables the check);
* its name does not match ``[a-zA-Z_:][a-zA-Z0-9_:]*`` or is longer than ``max_name_len``;
* it has more than ``max_labels`` labels, a label name that does not match
  ``[a-zA-Z_][a-zA-Z0-9_]*`` or starts with ``__`` (reserved), a label value that is not a
  string, or one longer than ``max_label_value_len`` characters.

Accepted samples come out with their value and timestamp as plain ``float`` (an ``int`` value
becomes a float sample); nothing else about them changes.

>>> from opsloop.store.telemetry.metrics import MetricSample
>>> ok, bad = check_samples(
...     [MetricSample("up", 1, 100.0), MetricSample("up", float("nan"), 100.0)], now=100.0
... )
>>> ok
[MetricSample(name='up', value=1.0, ts=100.0, labels={})]
>>> bad[0].reason
'value is NaN'
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from opsloop.store.telemetry.metrics import MetricSample

__all__ = ["DEFAULT_LIMITS", "Rejection", "SampleLimits", "check_sample", "check_samples"]

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_REPR_LIMIT = 200


@dataclass(frozen=True, slots=True)
class SampleLimits:
    """What :func:`check_samples` accepts; times in seconds, lengths in characters."""

    max_future_s: float = 600.0
    retention_s: float | None = 30 * 86400.0
    max_labels: int = 32
    max_label_value_len: int = 2048
    max_name_len: int = 255


DEFAULT_LIMITS = SampleLimits()


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused sample: a short rendering of it (at most 200 characters) and why."""

    sample_repr: str
    reason: str


def _render(sample: object) -> str:
    if isinstance(sample, MetricSample):
        labels = sample.labels if isinstance(sample.labels, dict) else {}
        inner = ",".join(f"{k}={v!r}" for k, v in labels.items())
        text = f"{sample.name}{{{inner}}} {sample.value!r} @{sample.ts!r}"
    else:
        text = repr(sample)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 1] + "…"


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _describe_bad_number(value: object) -> str:
    if not _is_real(value):
        return f"is not a number ({type(value).__name__})"
    f = float(value)  # type: ignore[arg-type]
    if math.isnan(f):
        return "is NaN"
    return f"is {'+' if f > 0 else '-'}Inf"


def check_sample(
    sample: object, *, now: float | None = None, limits: SampleLimits = DEFAULT_LIMITS
) -> str | None:
    """The reason ``sample`` must not be stored, or ``None`` when it may be.

    >>> check_sample(MetricSample("a b", 1.0, 0.0), now=0.0)
    "invalid metric name 'a b'"
    >>> check_sample(MetricSample("a", 1.0, 0.0, {"__name__": "x"}), now=0.0)
    "label name '__name__' is reserved (starts with '__')"
    """
    if not isinstance(sample, MetricSample):
        return f"not a MetricSample ({type(sample).__name__})"
    now = time.time() if now is None else now
    name = sample.name
    if not isinstance(name, str) or not METRIC_NAME_RE.fullmatch(name):
        return f"invalid metric name {name!r}"
    if len(name) > limits.max_name_len:
        return f"metric name longer than {limits.max_name_len} characters"
    value = sample.value
    if not _is_real(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
        return f"value {_describe_bad_number(value)}"
    ts = sample.ts
    if not _is_real(ts) or not math.isfinite(float(ts)):  # type: ignore[arg-type]
        return f"timestamp {_describe_bad_number(ts)}"
    ts = float(ts)  # type: ignore[arg-type]
    if ts > now + limits.max_future_s:
        return f"timestamp {ts - now:.0f}s in the future (limit {limits.max_future_s:.0f}s)"
    if limits.retention_s is not None and ts < now - limits.retention_s:
        return f"timestamp older than the retention horizon ({limits.retention_s:.0f}s)"
    labels = sample.labels
    if not isinstance(labels, dict):
        return f"labels are not a dict ({type(labels).__name__})"
    if len(labels) > limits.max_labels:
        return f"too many labels: {len(labels)} (limit {limits.max_labels})"
    for key, val in labels.items():
        if not isinstance(key, str) or not LABEL_NAME_RE.fullmatch(key):
            return f"invalid label name {key!r}"
        if key.startswith("__"):
            return f"label name {key!r} is reserved (starts with '__')"
        if not isinstance(val, str):
            return f"label {key!r} value is not a string ({type(val).__name__})"
        if len(val) > limits.max_label_value_len:
            return (
                f"label {key!r} value too long: {len(val)} characters "
                f"(limit {limits.max_label_value_len})"
            )
    return None


def check_samples(
    samples: Iterable[object], *, now: float | None = None, limits: SampleLimits = DEFAULT_LIMITS
) -> tuple[list[MetricSample], list[Rejection]]:
    """Split ``samples`` into ``(accepted, rejected)``, keeping input order in each.

    ``now`` (epoch seconds, default the current time) is what future and retention limits are
    measured from.
    """
    now = time.time() if now is None else now
    accepted: list[MetricSample] = []
    rejected: list[Rejection] = []
    for sample in samples:
        reason = check_sample(sample, now=now, limits=limits)
        if reason is not None:
            rejected.append(Rejection(_render(sample), reason))
            continue
        assert isinstance(sample, MetricSample)
        if type(sample.value) is not float or type(sample.ts) is not float:
            sample = dataclasses.replace(sample, value=float(sample.value), ts=float(sample.ts))
        accepted.append(sample)
    return accepted, rejected
