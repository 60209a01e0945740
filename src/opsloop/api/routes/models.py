"""Registered models (MLflow's registry): list, one model with versions, promote, rollback."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from opsloop.api.auth import require
from opsloop.roles import Role
from opsloop.store.state.tokens import Principal

router = APIRouter(prefix="/api/v1", tags=["models"])
Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Operator = Annotated[Principal, Depends(require(Role.operator))]


def _registry(request: Request) -> Any:
    return request.app.state.platform.registry


def _fail(exc: Exception) -> HTTPException:
    from opsloop.learn.registry import RegistryError

    if isinstance(exc, RegistryError):
        code = 404 if str(exc).startswith("no registered model") else 409
        if "has no version" in str(exc):
            code = 404
        if str(exc).startswith("alias "):
            code = 422
        return HTTPException(code, detail=str(exc))
    raise exc


@router.get("/models")
def list_models(request: Request, _: Viewer) -> dict[str, Any]:
    """Every registered model with its latest version and aliases."""
    return {"models": _registry(request).list_models()}


@router.get("/models/{name}")
def get_model(request: Request, name: str, _: Viewer) -> dict[str, Any]:
    """Versions (metrics, params, lineage tags), aliases and the history of each alias."""
    try:
        return _registry(request).show(name)
    except Exception as exc:
        raise _fail(exc) from None


class PromoteIn(BaseModel):
    """Which version gets the alias, and why (recorded in the audit log)."""

    model_config = ConfigDict(extra="forbid")
    version: str | int
    alias: str = "champion"
    reason: str = Field("", max_length=1000)


@router.post("/models/{name}/promote")
def promote(request: Request, name: str, body: PromoteIn, principal: Operator) -> dict[str, Any]:
    """Point an alias at a version (serving and detectors follow it)."""
    try:
        move = _registry(request).promote(
            name, body.version, body.alias, actor=principal.actor, reason=body.reason
        )
    except Exception as exc:
        raise _fail(exc) from None
    return move.__dict__


class RollbackIn(BaseModel):
    """Which alias to move back, and why."""

    model_config = ConfigDict(extra="forbid")
    alias: str = "champion"
    reason: str = Field("", max_length=1000)


@router.post("/models/{name}/rollback")
def rollback(
    request: Request, name: str, principal: Operator, body: RollbackIn | None = None
) -> dict[str, Any]:
    """Move an alias back to the version it pointed at before its last promotion."""
    body = body or RollbackIn()
    try:
        move = _registry(request).rollback(
            name, body.alias, actor=principal.actor, reason=body.reason
        )
    except Exception as exc:
        raise _fail(exc) from None
    return move.__dict__


@router.get("/detector-models")
def detector_models(request: Request, _: Viewer) -> dict[str, Any]:
    """opsloop's own detectors as models: the live champion, skipped versions, shadow counts
    (log sessions), and the alarm settings per metric family in use."""
    platform = request.app.state.platform
    return {
        **platform.detector_models.status(),
        "metric_settings": platform.metric_settings_models.status(),
    }


@router.post("/detector-models/check")
def detector_models_check(request: Request, principal: Operator) -> dict[str, Any]:
    """Look for a new champion now (instead of waiting for the next poll)."""
    platform = request.app.state.platform
    platform.detector_models.check_now()
    platform.metric_settings_models.check_now()
    return {
        **platform.detector_models.status(),
        "metric_settings": platform.metric_settings_models.status(),
    }
