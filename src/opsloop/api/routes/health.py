"""Health: the only route that needs no token."""

from __future__ import annotations

from fastapi import APIRouter

from opsloop import __version__

router = APIRouter(tags=["health"])


@router.get("/api/health")
def health() -> dict[str, str]:
    """Liveness: answers while the server runs."""
    return {"status": "ok", "version": __version__}
