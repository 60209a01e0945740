"""Telemetry store: metric samples, log lines and predictions in an embedded DuckDB file."""

from opsloop.store.telemetry.duck import TelemetryStore
from opsloop.store.telemetry.metrics import MetricSample, Series

__all__ = ["MetricSample", "Series", "TelemetryStore"]
