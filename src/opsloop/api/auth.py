"""Authentication and roles for the API: bearer tokens, or the dashboard's session cookie.

Every ``/api/v1`` route declares the role it needs with ``Depends(require(Role.x))``:
401 without valid credentials, 403 when the caller's role is too low.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException, Request, status

from opsloop.api.sessions import SESSION_COOKIE, verify_session
from opsloop.roles import Role
from opsloop.store.state.tokens import Principal

_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def authenticate(request: Request) -> Principal | None:
    """The caller, from ``Authorization: Bearer`` or the session cookie; ``None`` if neither."""
    platform = request.app.state.platform
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise _unauthorized("expected 'Authorization: Bearer TOKEN'")
        principal = platform.tokens.verify(credential.strip())
        if principal is None:
            raise _unauthorized("invalid or revoked token")
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        token_id = verify_session(cookie, platform.session_key)
        if token_id is None:
            return None
        if request.method in _UNSAFE and not _same_origin(request):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="cross-origin request refused")
        return platform.tokens.get(token_id)
    return None


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # SameSite=Strict already keeps the cookie off cross-site requests
    return origin.split("://", 1)[-1] == request.headers.get("host", "")


def require(role: Role) -> Callable[[Request], Principal]:
    """A dependency that admits callers holding ``role`` or higher."""

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if principal is None:
            raise _unauthorized("authentication required")
        if not principal.role.allows(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"role '{role.value}' or higher required"
            )
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{role.value}"
    return dependency
