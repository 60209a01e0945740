"""HTTP routes of the model gateway, for the platform server and for the standalone server.

:func:`create_router` returns the routes; the caller decides the auth (FastAPI dependencies per
group: ``predict`` for predictions and labels, ``read`` for status and metrics, ``manage`` for
refresh). :func:`create_app` builds the standalone app around a gateway.

Routes (``api`` = ``/api/v1``):

* ``POST {api}/models/{name}/predict`` - opsloop's body (``records``, ``columns`` + ``data``,
  ``inputs``), ``?alias=`` / ``?version=``; answers predictions with model, version, variant
  and request id (also in the ``X-Request-ID`` header; a client's own id is kept).
* ``POST {api}/models/{name}/invocations`` - MLflow's scoring protocol (``dataframe_split``,
  ``dataframe_records``, ``instances``, ``inputs``; CSV and parquet too) answering
  ``{"predictions": ...}`` like ``mlflow models serve``; with ``mlflow_paths`` also at
  ``/models/{name}/invocations``, and ``/invocations`` serves the ``default_model``.
* ``POST {api}/models/{name}/labels`` - delayed labels: ``{"labels": [{"request_id", "label"}]}``
  or one ``{"request_id", "label"}``.
* ``GET {api}/serving/models`` - what is served; ``POST {api}/serving/models/{name}/refresh``.
* ``GET {metrics_path}`` - Prometheus exposition.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.params import Depends
from fastapi.responses import JSONResponse, Response

from opsloop.learn.serving.errors import BadInput, GatewayError, ModelNotFound
from opsloop.learn.serving.gateway import ModelGateway, Prediction, new_request_id
from opsloop.learn.serving.payload import parse_api, parse_invocations

REQUEST_ID = "x-request-id"
MAX_LABELS = 10_000


def _request_id(request: Request) -> str:
    given = request.headers.get(REQUEST_ID, "")
    if 0 < len(given) <= 128 and given.isprintable():
        return given
    return new_request_id()


def _error(exc: GatewayError) -> JSONResponse:
    headers = {"X-Request-ID": exc.request_id} if exc.request_id else None
    if exc.status == 429:
        headers = {**(headers or {}), "Retry-After": "1"}
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def _json(content: str | bytes, request_id: str | None = None) -> Response:
    headers = {"X-Request-ID": request_id} if request_id else None
    return Response(content, media_type="application/json", headers=headers)


def _dumps(value: Any) -> str:
    from mlflow.utils.proto_json_utils import NumpyEncoder

    return json.dumps(value, cls=NumpyEncoder)


async def _json_body(request: Request) -> Any:
    body = await request.body()
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"the body is not valid JSON: {exc}") from None


def create_router(
    gateway: ModelGateway | Callable[[], ModelGateway],
    *,
    predict: Sequence[Depends] = (),
    read: Sequence[Depends] = (),
    manage: Sequence[Depends] = (),
    api_prefix: str = "/api/v1",
    metrics_path: str | None = "/metrics",
    mlflow_paths: bool = False,
    default_model: str | None = None,
) -> APIRouter:
    """The gateway's routes; ``predict``/``read``/``manage`` are the auth dependencies.

    ``gateway`` may be a function returning it, called at each request (so the platform builds
    its gateway only when a model route is first used).
    """
    router = APIRouter()
    gw: Callable[[], ModelGateway] = (
        (lambda: gateway) if isinstance(gateway, ModelGateway) else gateway
    )

    async def invoke(name: str, request: Request) -> Response:
        request_id = _request_id(request)
        try:
            payload = parse_invocations(await request.body(), request.headers.get("content-type"))
            result = await gw().predict(name, payload, request_id=request_id)
        except GatewayError as exc:
            exc.request_id = exc.request_id or request_id
            return _error(exc)
        body = result.body or _dumps({"predictions": result.predictions})
        return _json(body, request_id)

    @router.post(
        f"{api_prefix}/models/{{name}}/predict", dependencies=list(predict), tags=["serving"]
    )
    async def predict_route(
        name: str,
        request: Request,
        alias: Annotated[str | None, Query(max_length=100)] = None,
        version: Annotated[str | None, Query(max_length=20)] = None,
    ) -> Response:
        """Predict with a registered model (its champion, a canary, an alias or a version)."""
        request_id = _request_id(request)
        try:
            payload = parse_api(await _json_body(request))
            result: Prediction = await gw().predict(
                name, payload, alias=alias, version=version, request_id=request_id
            )
        except GatewayError as exc:
            exc.request_id = exc.request_id or request_id
            return _error(exc)
        return _json(_dumps(result.to_dict()), request_id)

    @router.post(
        f"{api_prefix}/models/{{name}}/invocations", dependencies=list(predict), tags=["serving"]
    )
    async def api_invocations(name: str, request: Request) -> Response:
        """MLflow's scoring protocol for model ``name``."""
        return await invoke(name, request)

    if mlflow_paths:

        @router.post("/models/{name}/invocations", dependencies=list(predict), tags=["serving"])
        async def model_invocations(name: str, request: Request) -> Response:
            """MLflow's scoring protocol for model ``name``."""
            return await invoke(name, request)

    if default_model is not None:

        @router.post("/invocations", dependencies=list(predict), tags=["serving"])
        async def invocations(request: Request) -> Response:
            """MLflow's scoring protocol for the default model (as ``mlflow models serve``)."""
            return await invoke(default_model, request)

    @router.post(
        f"{api_prefix}/models/{{name}}/labels", dependencies=list(predict), tags=["serving"]
    )
    async def labels_route(name: str, request: Request) -> Response:
        """Delayed labels of earlier predictions, by request id."""
        try:
            items = _labels(await _json_body(request))
            count = await asyncio.to_thread(gw().label, name, items)
        except GatewayError as exc:
            return _error(exc)
        return JSONResponse({"model": name, "accepted": count})

    @router.get(f"{api_prefix}/serving/models", dependencies=list(read), tags=["serving"])
    def serving_status() -> dict[str, Any]:
        """The served models: live version per alias, loaded versions, policy, problems."""
        return {"models": gw().status()}

    @router.post(
        f"{api_prefix}/serving/models/{{name}}/refresh", dependencies=list(manage), tags=["serving"]
    )
    async def refresh_route(name: str) -> Response:
        """Check the registry for ``name`` now and swap to new alias targets."""
        try:
            if name not in gw().models and not await asyncio.to_thread(gw().loader.exists, name):
                return _error(ModelNotFound(f"no registered model {name!r}", model=name))
            aliases = await asyncio.to_thread(gw().refresh, name)
        except GatewayError as exc:
            return _error(exc)
        status = next((m for m in gw().status() if m["name"] == name), {})
        problems = status.get("problems", {})
        return JSONResponse({"model": name, "aliases": aliases[name], "problems": problems})

    if metrics_path is not None:

        @router.get(metrics_path, dependencies=list(read), tags=["serving"])
        def metrics_route() -> Response:
            """Prometheus exposition of the gateway's metrics."""
            return Response(
                gw().metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
            )

    return router


def _labels(body: Any) -> list[tuple[str, Any]]:
    items = body.get("labels") if isinstance(body, dict) and "labels" in body else [body]
    if not isinstance(items, list) or not items:
        raise BadInput("expected {'labels': [{'request_id': ..., 'label': ...}]}")
    if len(items) > MAX_LABELS:
        raise BadInput(f"at most {MAX_LABELS} labels per request")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != {"request_id", "label"}:
            raise BadInput(f"label #{i}: expected exactly 'request_id' and 'label'")
        if not isinstance(item["request_id"], str) or not item["request_id"]:
            raise BadInput(f"label #{i}: 'request_id' must be a non-empty string")
        out.append((item["request_id"], item["label"]))
    return out


def create_app(
    gateway: ModelGateway,
    *,
    auth: Sequence[Depends] = (),
    default_model: str | None = None,
    publish_every_s: float = 1.0,
    max_body_bytes: int = 10 * 1024 * 1024,
    freeze_gc: bool = False,
) -> FastAPI:
    """The standalone gateway app: the routes (all behind ``auth``), ``/ping``, ``/health``,
    ``/version``; bodies over ``max_body_bytes`` get 413; the gateway starts and stops with
    the app. ``freeze_gc`` moves everything loaded at start-up out of the garbage collector's
    reach (see :func:`_freeze_gc`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(gateway.start)
        if freeze_gc:
            await asyncio.to_thread(_freeze_gc)
        publisher = asyncio.create_task(_publish(gateway, publish_every_s))
        try:
            yield
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)
            await asyncio.to_thread(gateway.close)

    from opsloop import __version__

    app = FastAPI(title="opsloop model gateway", version=__version__, lifespan=lifespan)
    app.state.gateway = gateway
    app.include_router(
        create_router(
            gateway,
            predict=auth,
            read=auth,
            manage=auth,
            mlflow_paths=True,
            default_model=default_model,
        )
    )

    async def ping() -> Response:
        return Response("\n", media_type="application/json")

    app.get("/ping", include_in_schema=False)(ping)
    app.get("/health", include_in_schema=False)(ping)

    @app.get("/version", include_in_schema=False)
    def version() -> Response:
        import mlflow

        return Response(mlflow.__version__, media_type="application/json")

    from opsloop.api.limits import BodySizeLimit

    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    return app


def _freeze_gc() -> None:
    """Collect once, then freeze: full collections no longer walk the libraries and models.

    A worker tracks over 200,000 objects after importing MLflow, pandas and scikit-learn and
    loading its models; every full collection walks them all (about 0.1 s on a small machine,
    more under load) and stalls every request of that worker. Measured with the serving benchmark:
    p99 270 ms -> 30 ms at the same throughput.
    """
    import gc

    gc.collect()
    gc.freeze()


async def _publish(gateway: ModelGateway, every_s: float) -> None:
    """Write this worker's metric snapshot for the other workers' scrapes."""
    registry = gateway.metrics.registry
    if registry.share_dir is None:
        return
    while True:
        await asyncio.to_thread(registry.publish)
        await asyncio.sleep(every_s)
