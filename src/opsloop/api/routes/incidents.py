"""Incidents: list, detail, lifecycle, feedback, merge, notes; silences."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from opsloop.act.incidents.incident import LifecycleError
from opsloop.act.incidents.matchers import MatcherError
from opsloop.api.auth import require
from opsloop.roles import Role
from opsloop.services.incidents import NotFound, incident_json
from opsloop.store.state.tokens import Principal
from opsloop.timeparse import parse_duration, parse_time

router = APIRouter(prefix="/api/v1", tags=["incidents"])
Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Operator = Annotated[Principal, Depends(require(Role.operator))]


def _svc(request: Request) -> Any:
    return request.app.state.platform.incidents


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except NotFound as exc:
        raise HTTPException(404, detail=f"not found: {exc}") from None
    except (LifecycleError, ValueError) as exc:
        raise HTTPException(
            409 if isinstance(exc, LifecycleError) else 400, detail=str(exc)
        ) from None


@router.get("/incidents")
def list_incidents(
    request: Request,
    _: Viewer,
    status: Literal["open", "acknowledged", "resolved"] | None = None,
    severity: Literal["critical", "error", "warning", "info"] | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Incidents, most recent activity first."""
    items, total = _svc(request).list(status, severity, q, limit, offset)
    return {"incidents": [incident_json(i) for i in items], "total": total}


@router.get("/incidents/{incident_id}")
def get_incident(request: Request, incident_id: str, _: Viewer) -> dict[str, Any]:
    """One incident with its alerts, reasons, timeline and notification attempts."""
    svc = _svc(request)
    inc = _call(svc.get, incident_id)
    out = incident_json(inc)
    out["timeline"] = svc.timeline(incident_id)
    out["deliveries"] = svc.deliveries(incident_id)
    return out


class ResolveIn(BaseModel):
    """Why the incident is resolved."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=2000)


@router.post("/incidents/{incident_id}/ack")
def ack(request: Request, incident_id: str, principal: Operator) -> dict[str, Any]:
    """open → acknowledged."""
    return incident_json(_call(_svc(request).acknowledge, incident_id, principal.actor))


@router.post("/incidents/{incident_id}/resolve")
def resolve(
    request: Request, incident_id: str, principal: Operator, body: ResolveIn | None = None
) -> dict[str, Any]:
    """→ resolved."""
    reason = body.reason if body else ""
    return incident_json(_call(_svc(request).resolve, incident_id, principal.actor, reason))


class FeedbackIn(BaseModel):
    """An operator's verdict; becomes a training label for the detector behind each alert."""

    model_config = ConfigDict(extra="forbid")
    label: Literal["true_problem", "noise", "duplicate"]
    fingerprint: str | None = Field(None, max_length=64, description="one alert, or all")
    note: str = Field("", max_length=2000)


@router.post("/incidents/{incident_id}/feedback")
def feedback(
    request: Request, incident_id: str, body: FeedbackIn, principal: Operator
) -> dict[str, Any]:
    """Mark the incident (or one alert) as a true problem, noise or a duplicate."""
    rows = _call(
        _svc(request).feedback,
        incident_id,
        principal.actor,
        body.label,
        body.fingerprint,
        body.note,
    )
    return {"recorded": rows}


@router.get("/feedback")
def list_feedback(
    request: Request,
    _: Viewer,
    detector: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    """Every verdict, per detector and signal: the labels the MLOps loop trains on."""
    return {"feedback": _svc(request).feedback_list(detector, limit)}


class MergeIn(BaseModel):
    """The incident to merge into this one."""

    model_config = ConfigDict(extra="forbid")
    other_id: str = Field(min_length=1, max_length=200)


@router.post("/incidents/{incident_id}/merge")
def merge(request: Request, incident_id: str, body: MergeIn, principal: Operator) -> dict[str, Any]:
    """Move every alert of ``other_id`` into this incident."""
    return incident_json(_call(_svc(request).merge, incident_id, body.other_id, principal.actor))


class SplitIn(BaseModel):
    """The alerts (fingerprints) to move into a new incident."""

    model_config = ConfigDict(extra="forbid")
    fingerprints: list[str] = Field(min_length=1, max_length=1000)


@router.post("/incidents/{incident_id}/split", status_code=201)
def split(request: Request, incident_id: str, body: SplitIn, principal: Operator) -> dict[str, Any]:
    """Move some alerts out into a new incident; returns the new incident."""
    return incident_json(
        _call(_svc(request).split, incident_id, body.fingerprints, principal.actor)
    )


class NoteIn(BaseModel):
    """A note on the timeline."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=10_000)


@router.post("/incidents/{incident_id}/notes", status_code=201)
def add_note(
    request: Request, incident_id: str, body: NoteIn, principal: Operator
) -> dict[str, str]:
    """Add a note to the incident's timeline."""
    _call(_svc(request).note, incident_id, principal.actor, body.text)
    return {"status": "added"}


class SilenceIn(BaseModel):
    """Label matchers (``=``, ``!=``, ``=~``, ``!~``) and a time range."""

    model_config = ConfigDict(extra="forbid")
    matchers: str = Field(min_length=1, max_length=2000, examples=['{service="api",env=~"prod.*"}'])
    starts_at: str | None = Field(None, description="epoch s or ISO-8601; default now")
    ends_at: str | None = Field(None, description="epoch s or ISO-8601")
    duration: str | None = Field(None, description="instead of ends_at, e.g. 2h")
    comment: str = Field("", max_length=2000)


def _silence_json(s: Any, now: float) -> dict[str, Any]:
    d = s.to_dict()
    d["state"] = s.state(now).value if hasattr(s.state(now), "value") else str(s.state(now))
    return d


@router.get("/silences")
def list_silences(request: Request, _: Viewer) -> dict[str, Any]:
    """Every silence with its state (pending, active, expired)."""
    now = time.time()
    return {"silences": [_silence_json(s, now) for s in _svc(request).silences()]}


@router.post("/silences", status_code=201)
def add_silence(request: Request, body: SilenceIn, principal: Operator) -> dict[str, Any]:
    """Create a silence: matching alerts are kept but not notified about."""
    now = time.time()
    try:
        start = parse_time(body.starts_at, now) if body.starts_at else now
        if body.ends_at:
            end = parse_time(body.ends_at, now)
        elif body.duration:
            end = start + parse_duration(body.duration)
        else:
            raise ValueError("give ends_at or duration")
        silence = _svc(request).add_silence(
            body.matchers, start, end, principal.actor, body.comment
        )
    except (ValueError, MatcherError) as exc:
        raise HTTPException(400, detail=str(exc)) from None
    return _silence_json(silence, now)


@router.delete("/silences/{silence_id}")
def expire_silence(request: Request, silence_id: str, principal: Operator) -> dict[str, Any]:
    """End a silence now."""
    return _silence_json(
        _call(_svc(request).expire_silence, silence_id, principal.actor), time.time()
    )
