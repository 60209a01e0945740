"""Model monitoring: reference profiles, data and prediction drift, windowed metric samples.

* :mod:`.profile` — the training data's reference profile, stored with a model version (JSON).
* :mod:`.stattests` — the two-sample statistics (KS, chi-squared, Z, Wasserstein, JS, PSI).
* :mod:`.drift` — per-feature drift with Evidently 0.7.23's default test choice, drift share.
* :mod:`.performance` — accuracy, F1, ROC AUC, MAE, RMSE on labelled predictions.
* :mod:`.window` — the streaming monitor turning windows into named metric samples.

Heavy libraries (pandas, scipy) are imported inside the functions that need them.
"""

from opsloop.learn.monitoring.drift import (
    DatasetDrift,
    FeatureDrift,
    detect_drift,
    feature_drift,
    prediction_drift,
)
from opsloop.learn.monitoring.performance import classification_metrics, regression_metrics
from opsloop.learn.monitoring.profile import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
)
from opsloop.learn.monitoring.window import MetricSample, WindowMonitor

__all__ = [
    "CategoricalProfile",
    "DatasetDrift",
    "FeatureDrift",
    "MetricSample",
    "NumericProfile",
    "ReferenceProfile",
    "WindowMonitor",
    "classification_metrics",
    "detect_drift",
    "feature_drift",
    "prediction_drift",
    "regression_metrics",
]
