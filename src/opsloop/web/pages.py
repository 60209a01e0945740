"""Server-rendered dashboard: login, layout with navigation, Overview page."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from opsloop import __version__
from opsloop.api.auth import authenticate
from opsloop.api.sessions import SESSION_COOKIE, make_session
from opsloop.web.nav import NAV

_WEB = resources.files("opsloop.web")
templates = Jinja2Templates(directory=str(_WEB / "templates"))
templates.env.filters["ts"] = lambda t: (
    datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S") if t is not None else "—"
)
router = APIRouter(include_in_schema=False)

OVERVIEW_CHARTS = [
    ("host_cpu_percent", "CPU", "%"),
    ("host_memory_percent", "Memory", "%"),
    ("host_load1", "Load (1 min)", ""),
    ("host_disk_percent", "Disk usage", "%"),
    ("host_network_receive_bytes_per_s", "Network in", "B/s"),
    ("host_disk_write_bytes_per_s", "Disk writes", "B/s"),
]

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _secure_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def page(request: Request, template: str, active: str, /, **context: object) -> Response:
    """Render a dashboard template with the navigation and security headers."""
    return _page(request, template, active, **context)


def _page(request: Request, template: str, active: str, /, **context: object) -> Response:
    principal = context.get("principal")
    nav = [i for i in NAV if principal is None or principal.role.allows(i.role)]  # type: ignore[attr-defined]
    ctx = {"nav": nav, "active": active, "version": __version__, **context}
    return _secure_headers(templates.TemplateResponse(request, template, ctx))


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    """The login page: paste an API token."""
    return _page(request, "login.html", "login", error=None)


@router.post("/login")
def login(request: Request, token: Annotated[str, Form(max_length=500)] = "") -> Response:
    """Exchange a token for an HTTP-only session cookie."""
    platform = request.app.state.platform
    principal = platform.tokens.verify(token.strip())
    if principal is None:
        resp = _page(request, "login.html", "login", error="That token is not valid.")
        resp.status_code = 401
        return resp
    ttl = platform.settings.session_hours * 3600
    resp = RedirectResponse("/", status_code=303)
    resp.set_cookie(
        SESSION_COOKIE,
        make_session(principal.token_id, platform.session_key, ttl),
        max_age=int(ttl),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    platform.audit.record(principal.actor, "session.login")
    return resp


@router.post("/logout")
def logout() -> Response:
    """End the session."""
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    """The Overview page: the host's live metrics as charts."""
    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return _page(request, "overview.html", "overview", principal=principal, charts=OVERVIEW_CHARTS)


@router.get("/ui/partials/host-summary", response_class=HTMLResponse)
def host_summary(request: Request) -> Response:
    """Latest value of each headline host metric (refreshed by htmx)."""
    principal = authenticate(request)
    if principal is None:
        return Response(status_code=401)
    store = request.app.state.platform.telemetry
    now = time.time()
    latest = []
    for name, label, unit in OVERVIEW_CHARTS[:4]:
        series = store.query_metrics(name, now - 120, now, 10)
        values = [s.points[-1][1] for s in series if s.points]
        value = max(values) if values else None
        latest.append({"label": label, "unit": unit, "value": value})
    return _page(request, "partials/host_summary.html", "overview", latest=latest)


def mount_dashboard(app: FastAPI) -> None:
    """Add the dashboard's routes and static files to ``app``."""
    app.mount("/static", StaticFiles(directory=str(_WEB / "static")), name="static")
    app.include_router(router)
    from opsloop.web.incidents_pages import router as incidents_router
    from opsloop.web.logs_pages import router as logs_router
    from opsloop.web.metrics_pages import router as metrics_router
    from opsloop.web.models_pages import router as models_router
    from opsloop.web.pipelines_pages import router as pipelines_router
    from opsloop.web.runbooks_pages import router as runbooks_router

    app.include_router(logs_router)
    app.include_router(metrics_router)
    app.include_router(incidents_router)
    app.include_router(runbooks_router)
    app.include_router(pipelines_router)
    app.include_router(models_router)
