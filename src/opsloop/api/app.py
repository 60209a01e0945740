"""The FastAPI application: routers, limits, dashboard and background services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from opsloop import __version__
from opsloop.api.limits import BodySizeLimit
from opsloop.api.routes import (
    alerts,
    health,
    incidents,
    logs,
    metrics,
    models,
    pipelines,
    runbooks,
    tokens,
)
from opsloop.platform import Platform

log = logging.getLogger("opsloop.api")


async def _serve_models(platform: Platform) -> None:
    """Model gateway housekeeping: watch aliases once something was served; close windows."""
    started = False
    while True:
        await asyncio.sleep(5.0)
        if platform._serving is not None and not started:
            await asyncio.to_thread(platform.serving.start, load=False)
            started = True
        if platform._monitoring is not None:
            try:
                await asyncio.to_thread(platform.monitoring.tick)
            except Exception:
                log.exception("model monitoring tick failed")


def create_app(platform: Platform, background: bool = True) -> FastAPI:
    """Build the app around an opened :class:`Platform`.

    ``background`` starts the host collector and retention sweeps with the app's lifespan.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        if background:
            from opsloop.services.host_metrics import run_host_collector
            from opsloop.services.retention import run_retention

            if platform.settings.collector.enabled:
                tasks.append(asyncio.create_task(run_host_collector(platform)))
            tasks.append(asyncio.create_task(run_retention(platform)))
            from opsloop.services.log_sources import (
                build_sources,
                run_log_sources,
                start_log_sources,
            )

            sources = build_sources(platform)
            app.state.log_sources = sources
            await start_log_sources(sources)
            tasks.append(asyncio.create_task(run_log_sources(platform, sources)))
            from opsloop.services.metric_sources import run_metric_sources

            tasks.append(asyncio.create_task(run_metric_sources(platform)))
            from opsloop.services.incident_loop import run_incident_loop

            tasks.append(asyncio.create_task(run_incident_loop(platform)))
            # marks runs a crash left `running` as interrupted, then fires schedules
            await asyncio.to_thread(platform.pipelines.start_schedules)
            await asyncio.to_thread(platform.detector_models.start)
            await asyncio.to_thread(platform.metric_settings_models.start)
            tasks.append(asyncio.create_task(_serve_models(platform)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            log.info("background services stopped")

    app = FastAPI(
        title="opsloop",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.platform = platform
    from opsloop.observe.counter_rate import CounterRate

    app.state.counter_rates = CounterRate()
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(tokens.router)
    app.include_router(logs.router)
    app.include_router(alerts.router)
    app.include_router(incidents.router)
    app.include_router(runbooks.router)
    app.include_router(pipelines.router)
    app.include_router(models.router)
    from fastapi import Depends

    from opsloop.api.auth import require
    from opsloop.learn.serving.app import create_router as serving_router
    from opsloop.roles import Role

    app.include_router(
        serving_router(
            lambda: platform.serving,
            predict=[Depends(require(Role.operator))],
            read=[Depends(require(Role.viewer))],
            manage=[Depends(require(Role.operator))],
            metrics_path="/metrics",
        )
    )

    from opsloop.web.pages import mount_dashboard

    mount_dashboard(app)

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        """Swagger UI served from the package's own files (no CDN)."""
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title="opsloop API",
            swagger_js_url="/static/vendor/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    @app.exception_handler(ValueError)
    async def _value_error(_request: object, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    app.add_middleware(BodySizeLimit, max_bytes=platform.settings.max_body_bytes)
    return app
