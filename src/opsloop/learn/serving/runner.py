"""One loaded model version behind the gateway: batched rows or MLflow's own scoring path.

Tabular requests (rows) of a tabular model go through the :class:`MicroBatcher` (unless the
model's policy turns batching off): the rows become one DataFrame, parsed with MLflow's own
``dataframe_from_parsed_json`` against the model's signature, and the predictions are made
JSON-able with MLflow's ``_get_jsonable_obj`` before being split per request, so each request
gets what ``mlflow models serve`` would answer. Every other request is handed unchanged to
MLflow's ``scoring_server.invocations`` (same parsing, same errors).

Predictions run on the gateway's thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from opsloop.learn.serving.batching import MicroBatcher
from opsloop.learn.serving.errors import BadInput, GatewayError, ModelFailed
from opsloop.learn.serving.loader import LoadedModel
from opsloop.learn.serving.metrics import ServingMetrics
from opsloop.learn.serving.payload import Payload
from opsloop.learn.serving.policy import ModelPolicy


@dataclass
class Outcome:
    """A request's predictions; ``body`` is MLflow's own JSON answer when it made one."""

    predictions: Any
    body: str | None = None
    rows: int = 0


class ModelRunner:
    """Predicts with one loaded version; batches rows when the model and policy allow."""

    def __init__(
        self,
        loaded: LoadedModel,
        policy: ModelPolicy,
        executor: Executor,
        metrics: ServingMetrics | None = None,
    ):
        self.loaded = loaded
        self.executor = executor
        self.metrics = metrics
        self.last_used = time.monotonic()
        self.batcher: MicroBatcher | None = None
        if policy.batching and loaded.tabular:
            self.batcher = MicroBatcher(
                self._predict_rows,
                executor,
                max_batch_size=policy.max_batch_size,
                max_wait_ms=policy.max_wait_ms,
                on_batch=self._on_batch,
            )

    @property
    def name(self) -> str:
        """The model's name."""
        return self.loaded.name

    @property
    def version(self) -> str:
        """The version this runner serves."""
        return self.loaded.version

    @property
    def batching(self) -> bool:
        """Whether rows of concurrent requests are batched."""
        return self.batcher is not None

    async def predict(self, payload: Payload) -> Outcome:
        """The predictions for one request (raises :class:`GatewayError`)."""
        self.last_used = time.monotonic()
        loop = asyncio.get_running_loop()
        if payload.tabular and self.loaded.tabular:
            rows = payload.rows_for(self.loaded.columns, self.loaded.required)
            if rows is not None:
                if self.batcher is not None:
                    out = await self.batcher.submit(rows)
                else:
                    out = await loop.run_in_executor(self.executor, self._predict_rows, rows)
                return Outcome(out, rows=len(rows))
        return await loop.run_in_executor(self.executor, self._invoke, payload)

    def close(self) -> None:
        """Stop batching once the queue is empty (later requests still succeed)."""
        if self.batcher is not None:
            self.batcher.close()

    # -- in the thread pool --------------------------------------------------------------
    def _predict_rows(self, rows: list[list[Any]]) -> Any:
        """Predict rows in the model's column order; JSON-able output."""
        from mlflow.exceptions import MlflowException
        from mlflow.utils.proto_json_utils import _get_jsonable_obj, dataframe_from_parsed_json

        model = self.loaded.model
        try:
            frame = dataframe_from_parsed_json(
                {"columns": self.loaded.columns, "data": rows},
                pandas_orient="split",
                schema=self.loaded.input_schema,
            )
            raw = model.predict(frame)
        except MlflowException as exc:
            raise BadInput(exc.message, model=self.name, version=self.version) from None
        except GatewayError:
            raise
        except Exception as exc:
            raise ModelFailed(
                f"the model raised {type(exc).__name__}: {exc}",
                model=self.name,
                version=self.version,
            ) from exc
        return _get_jsonable_obj(raw, pandas_orient="records")

    def _invoke(self, payload: Payload) -> Outcome:
        """MLflow's own scoring path, for everything that is not plain rows."""
        from mlflow.exceptions import MlflowException
        from mlflow.pyfunc.scoring_server import invocations

        body, content_type = payload.mlflow_body()
        try:
            result = invocations(body, content_type, self.loaded.model, self.loaded.input_schema)
        except MlflowException as exc:
            raise BadInput(
                exc.message,
                model=self.name,
                version=self.version,
                status=exc.get_http_status_code(),
                code=str(exc.error_code),
            ) from None
        except Exception as exc:
            raise ModelFailed(
                f"the model raised {type(exc).__name__}: {exc}",
                model=self.name,
                version=self.version,
            ) from exc
        if result.status != 200:
            raise BadInput(
                result.response, model=self.name, version=self.version, status=result.status
            )
        parsed = json.loads(result.response)
        predictions = parsed.get("predictions", parsed) if isinstance(parsed, dict) else parsed
        return Outcome(predictions, body=result.response)

    def _on_batch(self, rows: int, requests: int) -> None:
        if self.metrics is not None:
            labels = (self.name, self.version)
            self.metrics.batch_rows.observe(labels, rows)
            self.metrics.batch_requests.observe(labels, requests)
