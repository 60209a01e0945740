"""The gateway as its own server: ``serve_models`` runs uvicorn with N worker processes.

Each worker is a separate process with its own gateway (models loaded once per worker, alias
polling per worker), so the configuration travels to the workers in the environment variable
``OPSLOOP_SERVING_CONFIG`` (JSON) and :func:`app_from_env` builds each worker's app. Their
metrics are added up through snapshot files in a shared temporary folder.

Auth: every route except ``/ping``, ``/health`` and ``/version`` needs
``Authorization: Bearer <token>``, the token coming from the argument or from
``OPSLOOP_SERVING_TOKEN``; ``no_auth=True`` (``--no-auth``) serves without, for local use
and benchmarks only.
"""

from __future__ import annotations

import hmac
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import HTTPException, Request, status

from opsloop.learn.serving.policy import ModelPolicy

CONFIG_ENV = "OPSLOOP_SERVING_CONFIG"
TOKEN_ENV = "OPSLOOP_SERVING_TOKEN"  # noqa: S105 - the variable name, not a secret


def bearer_auth(token: str) -> Callable[[Request], None]:
    """A dependency admitting requests with ``Authorization: Bearer <token>`` (401 otherwise)."""
    expected = token.encode()

    def check(request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="expected 'Authorization: Bearer TOKEN' with the serving token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def build_config(
    tracking_uri: str,
    models: Sequence[str],
    *,
    token: str | None = None,
    no_auth: bool = False,
    policies: Mapping[str, ModelPolicy | Mapping[str, Any]] | None = None,
    poll_interval_s: float = 10.0,
    threads: int = 4,
    metrics_dir: str | None = None,
) -> dict[str, Any]:
    """The JSON configuration each worker reads; checks auth and policies first."""
    token = token or os.environ.get(TOKEN_ENV) or None
    if token is None and not no_auth:
        raise ValueError(f"set {TOKEN_ENV} (or pass a token), or serve with --no-auth")
    if not models:
        raise ValueError("name at least one registered model to serve")
    checked = {}
    for name, policy in (policies or {}).items():
        value = policy if isinstance(policy, ModelPolicy) else ModelPolicy.from_dict(dict(policy))
        checked[name] = value.to_dict()
    return {
        "tracking_uri": tracking_uri,
        "models": list(models),
        "token": None if no_auth else token,
        "policies": checked,
        "poll_interval_s": poll_interval_s,
        "threads": threads,
        "metrics_dir": metrics_dir,
    }


def app_from_config(config: Mapping[str, Any]) -> Any:
    """A standalone app (FastAPI) for one worker, from :func:`build_config`'s output."""
    from fastapi import Depends

    from opsloop.learn.serving.app import create_app
    from opsloop.learn.serving.gateway import ModelGateway
    from opsloop.learn.serving.loader import ModelLoader
    from opsloop.learn.serving.metrics import MetricsRegistry, ServingMetrics

    policies = {n: ModelPolicy.from_dict(p) for n, p in (config.get("policies") or {}).items()}
    for name in config["models"]:
        policies.setdefault(name, ModelPolicy())
    gateway = ModelGateway(
        ModelLoader(config["tracking_uri"]),
        policies=policies,
        poll_interval_s=float(config.get("poll_interval_s", 10.0)),
        metrics=ServingMetrics(MetricsRegistry(config.get("metrics_dir"))),
        threads=int(config.get("threads", 4)),
        freeze_gc=True,
    )
    token = config.get("token")
    auth = [Depends(bearer_auth(token))] if token else []
    return create_app(gateway, auth=auth, default_model=config["models"][0], freeze_gc=True)


def app_from_env() -> Any:
    """The app factory uvicorn's workers call (configuration in ``OPSLOOP_SERVING_CONFIG``)."""
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise RuntimeError(f"{CONFIG_ENV} is not set: start the gateway with serve_models()")
    return app_from_config(json.loads(raw))


def serve_models(
    tracking_uri: str,
    host: str = "127.0.0.1",
    port: int = 5001,
    workers: int = 1,
    models: Sequence[str] = (),
    *,
    token: str | None = None,
    no_auth: bool = False,
    policies: Mapping[str, ModelPolicy | Mapping[str, Any]] | None = None,
    poll_interval_s: float = 10.0,
    threads: int = 4,
    log_level: str = "info",
) -> None:
    """Serve ``models`` (the first also at ``/invocations``) with ``workers`` processes.

    Blocks until the server stops. Raises ``ValueError`` without a token unless ``no_auth``.
    """
    import uvicorn

    metrics_dir = tempfile.mkdtemp(prefix="opsloop-serving-") if workers > 1 else None
    config = build_config(
        tracking_uri,
        models,
        token=token,
        no_auth=no_auth,
        policies=policies,
        poll_interval_s=poll_interval_s,
        threads=threads,
        metrics_dir=metrics_dir,
    )
    previous = os.environ.get(CONFIG_ENV)
    os.environ[CONFIG_ENV] = json.dumps(config)
    try:
        uvicorn.run(
            "opsloop.learn.serving.standalone:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        if previous is None:
            os.environ.pop(CONFIG_ENV, None)
        else:
            os.environ[CONFIG_ENV] = previous
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
