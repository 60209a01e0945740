"""API tokens: created once, stored as a hash, verified in constant time.

A token reads ``opl_<id>_<secret>``. The id (12 hex digits) finds the row; the secret (256 bits)
is checked against its stored SHA-256 with :func:`hmac.compare_digest`. A fast hash is the right
tool here: the secret is random and long, so there is nothing to brute-force, unlike a password.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from opsloop.roles import Role
from opsloop.store.state.db import StateDB
from opsloop.store.state.models import ApiToken, utcnow

_TOKEN_RE = re.compile(r"^opl_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_DUMMY_HASH = hashlib.sha256(b"opsloop-dummy").hexdigest()
# last_used_at is refreshed at most this often per token, to keep reads cheap.
_TOUCH_EVERY_S = 60.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's id, name and role."""

    token_id: str
    name: str
    role: Role

    @property
    def actor(self) -> str:
        """How this principal appears in the audit log."""
        return f"token:{self.name}"


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed (never with its secret)."""

    id: str
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenService:
    """Create, verify, list and revoke API tokens."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def create(self, name: str, role: Role | str) -> tuple[str, TokenInfo]:
        """Create a token; returns its plaintext (shown once, never stored) and its info."""
        role = Role(role)
        name = name.strip()
        if not name or len(name) > 200:
            raise ValueError("token name must be 1-200 characters")
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        row = ApiToken(id=token_id, name=name, role=role.value, secret_hash=_hash(secret))
        with self._db.session() as s:
            s.add(row)
            s.flush()
            info = self._info(row)
        return f"opl_{token_id}_{secret}", info

    def verify(self, token: str) -> Principal | None:
        """The principal for ``token``, or ``None`` when it is unknown, malformed or revoked."""
        m = _TOKEN_RE.match(token or "")
        token_id, secret = (m.group(1), m.group(2)) if m else ("", "x")
        with self._db.session() as s:
            row = s.get(ApiToken, token_id) if m else None
            expected = row.secret_hash if row is not None else _DUMMY_HASH
            ok = hmac.compare_digest(_hash(secret), expected)
            if not ok or row is None or row.revoked_at is not None:
                return None
            now = utcnow()
            if (
                row.last_used_at is None
                or (now - row.last_used_at).total_seconds() > _TOUCH_EVERY_S
            ):
                row.last_used_at = now
            return Principal(token_id=row.id, name=row.name, role=Role(row.role))

    def get(self, token_id: str) -> Principal | None:
        """The principal of an active token by id (used by dashboard sessions)."""
        with self._db.session() as s:
            row = s.get(ApiToken, token_id)
            if row is None or row.revoked_at is not None:
                return None
            return Principal(token_id=row.id, name=row.name, role=Role(row.role))

    def list(self) -> list[TokenInfo]:
        """Every token, oldest first."""
        with self._db.session() as s:
            return [
                self._info(r) for r in s.scalars(select(ApiToken).order_by(ApiToken.created_at))
            ]

    def revoke(self, token_id: str) -> bool:
        """Revoke a token; returns whether an active token was revoked."""
        with self._db.session() as s:
            row = s.get(ApiToken, token_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            return True

    @staticmethod
    def _info(row: ApiToken) -> TokenInfo:
        return TokenInfo(
            id=row.id,
            name=row.name,
            role=Role(row.role),
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )
