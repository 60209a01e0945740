"""Reading metric samples from CSV: ``timestamp,value`` or ``timestamp,name,labels,value``.

``timestamp`` is epoch seconds (or milliseconds, when larger than 1e11) or ISO-8601; ``labels``
is ``k=v;k2=v2`` or a JSON object.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from opsloop.store.telemetry import MetricSample
from opsloop.timeparse import parse_time


class CsvError(Exception):
    """The CSV cannot be read (one-line message with file and line)."""


def _ts(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        return parse_time(text)
    return value / 1000.0 if value > 1e11 else value


def _labels(text: str) -> dict[str, str]:
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("labels must be an object")
        return {str(k): str(v) for k, v in data.items()}
    out = {}
    for part in text.split(";"):
        k, sep, v = part.partition("=")
        if not sep or not k.strip():
            raise ValueError(f"label {part!r} is not key=value")
        out[k.strip()] = v.strip()
    return out


def _rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            return header, [(n, row) for n, row in enumerate(reader, 2) if row]
    except OSError as exc:
        raise CsvError(f"cannot read {path}: {exc.strerror}") from None


def read_series_csv(path: Path) -> list[tuple[float, float]]:
    """``(ts, value)`` points of a ``timestamp,value`` file, sorted by time."""
    header, rows = _rows(path)
    if header[:2] != ["timestamp", "value"]:
        raise CsvError(f"{path}: expected a header 'timestamp,value'")
    out = []
    for n, row in rows:
        try:
            out.append((_ts(row[0]), float(row[1])))
        except (ValueError, IndexError) as exc:
            raise CsvError(f"{path}:{n}: {exc}") from None
    return sorted(out)


def read_samples_csv(
    path: Path, name: str | None = None, labels: dict[str, str] | None = None
) -> list[MetricSample]:
    """Samples of a wide (``timestamp,value`` + ``--name``) or long-format file."""
    header, rows = _rows(path)
    out = []
    if header[:2] == ["timestamp", "value"]:
        if not name:
            raise CsvError(f"{path}: a timestamp,value file needs --name")
        for ts, value in read_series_csv(path):
            out.append(MetricSample(name, value, ts, dict(labels or {})))
        return out
    if header[:4] != ["timestamp", "name", "labels", "value"]:
        raise CsvError(f"{path}: expected 'timestamp,value' or 'timestamp,name,labels,value'")
    for n, row in rows:
        try:
            out.append(
                MetricSample(
                    row[1], float(row[3]), _ts(row[0]), {**_labels(row[2]), **(labels or {})}
                )
            )
        except (ValueError, IndexError) as exc:
            raise CsvError(f"{path}:{n}: {exc}") from None
    return out
