"""Errors of the model gateway, each with its HTTP status and a JSON body.

The body carries MLflow's scoring-server keys (``error_code``, ``message``) so MLflow clients
read it as they read ``mlflow models serve`` errors, and the platform's ``detail`` so opsloop's
own clients do too; ``model``, ``version`` and ``request_id`` say which request failed.

>>> e = Overloaded("too many requests in flight", model="churn")
>>> e.status, e.body()["error_code"], e.body()["model"]
(429, 'MODEL_OVERLOADED', 'churn')
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """A request the gateway answers with an error status instead of predictions."""

    status = 500
    code = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        version: str | None = None,
        request_id: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.model = model
        self.version = version
        self.request_id = request_id
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        out: dict[str, Any] = {
            "error_code": self.code,
            "message": self.message,
            "detail": self.message,
        }
        for key in ("model", "version", "request_id"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class BadInput(GatewayError):
    """The request body is not a payload the model accepts (400)."""

    status = 400
    code = "BAD_REQUEST"


class ModelNotFound(GatewayError):
    """No registered model of that name, or no such version (404)."""

    status = 404
    code = "RESOURCE_DOES_NOT_EXIST"


class Overloaded(GatewayError):
    """The model's concurrency limit is reached: its queue is full (429)."""

    status = 429
    code = "MODEL_OVERLOADED"


class ModelUnavailable(GatewayError):
    """The model cannot answer now: its alias is unset or its version failed to load (503)."""

    status = 503
    code = "MODEL_UNAVAILABLE"


class PredictTimeout(GatewayError):
    """The prediction did not finish within the model's timeout (504)."""

    status = 504
    code = "PREDICTION_TIMEOUT"


class ModelFailed(GatewayError):
    """The model raised while predicting on input it accepted (500)."""

    status = 500
    code = "MODEL_ERROR"
