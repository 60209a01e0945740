"""Streaming metric anomaly detection, NAB scoring and forecasting (pure, JSON-able state)."""

from opsloop.detect.metrics.alarm import EdgeAlarm
from opsloop.detect.metrics.calibrate import TailCalibrator
from opsloop.detect.metrics.default import DefaultMetricDetector
from opsloop.detect.metrics.ewm import RobustEWM
from opsloop.detect.metrics.moves import MoveFrequency
from opsloop.detect.metrics.quantile import P2Quantile
from opsloop.detect.metrics.seasonal import SeasonalModel, SeasonalProfile
from opsloop.detect.metrics.shape import ShapeNovelty

__all__ = [
    "DefaultMetricDetector",
    "EdgeAlarm",
    "MoveFrequency",
    "P2Quantile",
    "RobustEWM",
    "SeasonalModel",
    "SeasonalProfile",
    "ShapeNovelty",
    "TailCalibrator",
]
