"""Alert intake: Alertmanager's webhook (v4) and opsloop's generic JSON."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request

from opsloop.act.incidents import PayloadError, parse_alertmanager, parse_payload
from opsloop.api.auth import require
from opsloop.roles import Role
from opsloop.store.state.tokens import Principal

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


async def _json(request: Request) -> Any:
    body = await request.body()
    try:
        return json.loads(body)
    except ValueError as exc:
        raise HTTPException(400, detail=f"invalid JSON: {exc}") from None


async def _intake(request: Request, alerts: list, principal: Principal) -> dict[str, Any]:
    platform = request.app.state.platform
    results = await asyncio.to_thread(platform.incidents.intake, alerts, principal.actor)
    runbooks = platform.runbooks
    if runbooks.runbooks:
        ids = [r["incident_id"] for r in results]
        await asyncio.to_thread(runbooks.on_alerts, alerts, ids)
    return {"accepted": len(alerts), "results": results}


@router.post("/alertmanager")
async def alertmanager_webhook(
    request: Request, principal: Annotated[Principal, Depends(require(Role.operator))]
) -> dict[str, Any]:
    """Alertmanager webhook payload (version 4): point a ``webhook_config`` here."""
    payload = await _json(request)
    try:
        batch = parse_alertmanager(payload, now=time.time())
    except PayloadError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    return await _intake(request, list(batch.alerts), principal)


@router.post("")
async def generic_alerts(
    request: Request, principal: Annotated[Principal, Depends(require(Role.operator))]
) -> dict[str, Any]:
    """One alert or a list: ``name, severity, labels, annotations, starts_at, ends_at,
    fingerprint``."""
    payload = await _json(request)
    try:
        alerts = parse_payload(payload, now=time.time())
    except PayloadError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    return await _intake(request, alerts, principal)
