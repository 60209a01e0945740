"""Model serving: a gateway for registered MLflow models, in the platform or standalone.

* :class:`ModelGateway` serves models by alias, swaps versions live, batches rows, applies
  each model's :class:`ModelPolicy` (canary, shadow, limits) and logs sampled predictions.
* :func:`create_router` gives its HTTP routes (opsloop's ``/predict`` and MLflow's
  ``/invocations`` protocol); :func:`serve_models` runs it as its own uvicorn server.

MLflow, pandas and FastAPI are imported only when used.
"""

from __future__ import annotations

from typing import Any

from opsloop.learn.serving.errors import (
    BadInput,
    GatewayError,
    ModelFailed,
    ModelNotFound,
    ModelUnavailable,
    Overloaded,
    PredictTimeout,
)
from opsloop.learn.serving.gateway import ModelGateway, Prediction
from opsloop.learn.serving.loader import LoadedModel, ModelLoader
from opsloop.learn.serving.metrics import MetricsRegistry, ServingMetrics
from opsloop.learn.serving.payload import Payload, parse_api, parse_invocations
from opsloop.learn.serving.policy import ModelPolicy
from opsloop.learn.serving.predlog import LabelHook, PredictionHook

__all__ = [
    "BadInput",
    "GatewayError",
    "LabelHook",
    "LoadedModel",
    "MetricsRegistry",
    "ModelFailed",
    "ModelGateway",
    "ModelLoader",
    "ModelNotFound",
    "ModelPolicy",
    "ModelUnavailable",
    "Overloaded",
    "Payload",
    "PredictTimeout",
    "Prediction",
    "PredictionHook",
    "ServingMetrics",
    "create_app",
    "create_router",
    "parse_api",
    "parse_invocations",
    "serve_models",
]

_LAZY = {
    "create_app": "opsloop.learn.serving.app",
    "create_router": "opsloop.learn.serving.app",
    "serve_models": "opsloop.learn.serving.standalone",
}


def __getattr__(name: str) -> Any:
    """Import the HTTP parts (FastAPI, uvicorn) only when they are asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
