"""API tokens: who am I, and (admins) list, create and revoke tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from opsloop.api.auth import require
from opsloop.roles import Role
from opsloop.store.state.tokens import Principal

router = APIRouter(prefix="/api/v1", tags=["tokens"])


class Me(BaseModel):
    """The caller."""

    token_id: str
    name: str
    role: Role


class TokenOut(BaseModel):
    """A token's public facts (never its secret)."""

    id: str
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreate(BaseModel):
    """What a new token is called and may do."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: Role


class TokenCreated(TokenOut):
    """A new token, with its plaintext shown this once."""

    token: str


@router.get("/me", response_model=Me)
def me(principal: Annotated[Principal, Depends(require(Role.viewer))]) -> Me:
    """Who the presented credentials belong to."""
    return Me(token_id=principal.token_id, name=principal.name, role=principal.role)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(
    request: Request, _: Annotated[Principal, Depends(require(Role.admin))]
) -> list[TokenOut]:
    """Every token (admins only)."""
    return [TokenOut(**vars(t)) for t in request.app.state.platform.tokens.list()]


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(
    request: Request,
    body: TokenCreate,
    principal: Annotated[Principal, Depends(require(Role.admin))],
) -> TokenCreated:
    """Create a token; its plaintext is in this answer only."""
    platform = request.app.state.platform
    plaintext, info = platform.tokens.create(body.name, body.role)
    platform.audit.record(principal.actor, "token.create", target=info.id, role=info.role.value)
    return TokenCreated(token=plaintext, **vars(info))


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(
    request: Request, token_id: str, principal: Annotated[Principal, Depends(require(Role.admin))]
) -> None:
    """Revoke a token; its sessions end too."""
    platform = request.app.state.platform
    if not platform.tokens.revoke(token_id):
        raise HTTPException(404, detail="no such active token")
    platform.audit.record(principal.actor, "token.revoke", target=token_id)
