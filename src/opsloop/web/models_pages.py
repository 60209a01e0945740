"""Dashboard Models pages: registered models, one model's versions, aliases and their history.

Operators promote a version to an alias or roll an alias back with a plain POST form and a
reason; the registry records the move in the alias history and the audit log, with the
operator's token as actor.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsloop.api.auth import authenticate
from opsloop.roles import Role
from opsloop.web.pages import page
from opsloop.web.pipelines_pages import mlflow_run_url

router = APIRouter(include_in_schema=False)

# version tags that say where a model came from, in display order (others are listed after)
LINEAGE_TAGS = {
    "opsloop.pipeline": "pipeline",
    "opsloop.pipeline_run_id": "pipeline run",
    "opsloop.mlflow_run_id": "MLflow run",
    "opsloop.data_hash": "data hash",
    "opsloop.source": "data source",
    "opsloop.params": "params",
}
EVAL_PREFIX = "opsloop.eval."


def version_view(version: dict[str, Any]) -> dict[str, Any]:
    """A registry version split for display: lineage tags, evaluation tags, the rest.

    >>> v = version_view({"tags": {"opsloop.data_hash": "ab", "opsloop.eval.f1": "0.9",
    ...                            "team": "x", "opsloop.params": '{"k": 3}'}})
    >>> v["lineage"], v["evaluation"], v["other_tags"]
    ([('data hash', 'opsloop.data_hash', 'ab'), ('params', 'opsloop.params', '{"k": 3}')], \
{'f1': '0.9'}, {'team': 'x'})
    """
    tags: dict[str, str] = dict(version.get("tags") or {})
    lineage = [(label, key, tags[key]) for key, label in LINEAGE_TAGS.items() if tags.get(key)]
    evaluation = {k[len(EVAL_PREFIX) :]: v for k, v in tags.items() if k.startswith(EVAL_PREFIX)}
    other = {
        k: v for k, v in tags.items() if k not in LINEAGE_TAGS and not k.startswith(EVAL_PREFIX)
    }
    return {**version, "lineage": lineage, "evaluation": evaluation, "other_tags": other}


def _pretty(value: str) -> str:
    """JSON tag values re-dumped compactly; anything else as is."""
    try:
        return json.dumps(json.loads(value), sort_keys=True)
    except ValueError:
        return value


def _model_context(request: Request, name: str) -> dict[str, Any] | None:
    from opsloop.learn.registry import RegistryError

    try:
        model = request.app.state.platform.registry.show(name)
    except RegistryError:
        return None
    versions = [version_view(v) for v in model["versions"]]
    for v in versions:
        v["lineage"] = [(label, key, _pretty(val)) for label, key, val in v["lineage"]]
        v["mlflow_url"] = mlflow_run_url(request, (v.get("run") or {}).get("run_id"))
    history = {
        alias: list(reversed(entries)) for alias, entries in sorted(model["history"].items())
    }
    return {
        "model": model,
        "versions": versions,
        "history": history,
        **_monitoring_context(request, name),
    }


def _monitoring_context(request: Request, name: str) -> dict[str, Any]:
    """What the gateway serves of ``name`` (versions live), its traffic, and its monitoring
    series (drift per feature, performance, latency, error rate) with links to their charts."""
    from urllib.parse import urlencode

    platform = request.app.state.platform
    serving = None
    if platform._serving is not None:
        serving = next((m for m in platform.serving.status() if m["name"] == name), None)
    traffic = platform.predictions.counts(name)
    series = []
    for row in platform.telemetry.series_overview("model_", limit=2000):
        labels = row["labels"]
        if labels.get("model") != name:
            continue
        query = [("name", row["name"])] + [("label", f"{k}={v}") for k, v in sorted(labels.items())]
        detail = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "model")
        series.append({**row, "detail": detail, "href": "/series/view?" + urlencode(query)})
    return {"serving": serving, "traffic": traffic, "monitoring": series}


def _render_model(
    request: Request, principal: Any, name: str, error: str | None = None, status: int = 200
) -> Response:
    ctx = _model_context(request, name)
    if ctx is None:
        resp = page(request, "not_found.html", "models", principal=principal, what="model")
        resp.status_code = 404
        return resp
    resp = page(
        request, "model.html", "models", principal=principal, error=error,
        can_promote=principal.role.allows(Role.operator), **ctx,
    )  # fmt: skip
    resp.status_code = status
    return resp


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request) -> Response:
    """Every registered model with its latest version and aliases."""
    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    platform = request.app.state.platform
    return page(
        request, "models.html", "models", principal=principal,
        models=platform.registry.list_models(), tracking_uri=platform.mlflow.tracking_uri,
    )  # fmt: skip


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(request: Request, name: str) -> Response:
    """One model: versions with aliases, metrics and lineage; alias history; promote/rollback."""
    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return _render_model(request, principal, name)


def _move(request: Request, name: str, action: str, **form: str) -> Response:
    """Promote or roll back for an operator; the model page again, with the error if any."""
    from opsloop.learn.registry import RegistryError

    principal = authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if not principal.role.allows(Role.operator):
        return Response("operator role required", status_code=403)
    registry = request.app.state.platform.registry
    alias, reason = form["alias"].strip(), form["reason"].strip()
    try:
        if action == "promote":
            registry.promote(
                name, form["version"].strip(), alias, actor=principal.actor, reason=reason
            )
        else:
            registry.rollback(name, alias, actor=principal.actor, reason=reason)
    except RegistryError as exc:
        message = str(exc)
        if message.startswith("no registered model"):
            return _render_model(request, principal, name)  # the 404 page
        status = 422 if message.startswith("alias ") else 409
        if "has no version" in message:
            status = 404
        return _render_model(request, principal, name, error=message, status=status)
    return RedirectResponse(f"/models/{quote(name, safe='')}?moved={quote(alias)}", 303)


@router.post("/models/{name}/promote")
def promote(
    request: Request,
    name: str,
    version: Annotated[str, Form(max_length=20)],
    alias: Annotated[str, Form(max_length=100)] = "champion",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Point an alias at a version (operators); audited with the reason."""
    return _move(request, name, "promote", version=version, alias=alias, reason=reason)


@router.post("/models/{name}/rollback")
def rollback(
    request: Request,
    name: str,
    alias: Annotated[str, Form(max_length=100)] = "champion",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Move an alias back to the version it pointed at before (operators); audited."""
    return _move(request, name, "rollback", alias=alias, reason=reason)
