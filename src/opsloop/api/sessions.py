"""Dashboard sessions: an HTTP-only cookie holding ``token_id.expiry.signature``.

The signature is HMAC-SHA256 with the home's session key, so the cookie carries no secret and
cannot be forged; revoking the token ends its sessions because every request re-checks it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

SESSION_COOKIE = "opsloop_session"


def _sign(payload: str, key: bytes) -> str:
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def make_session(token_id: str, key: bytes, ttl_s: float, now: float | None = None) -> str:
    """A cookie value for ``token_id`` valid for ``ttl_s`` seconds."""
    expires = int((time.time() if now is None else now) + ttl_s)
    payload = f"{token_id}.{expires}"
    return f"{payload}.{_sign(payload, key)}"


def verify_session(value: str, key: bytes, now: float | None = None) -> str | None:
    """The token id of a valid, unexpired session cookie, else ``None``.

    >>> k = b"k" * 32
    >>> verify_session(make_session("abc", k, 60, now=0), k, now=30)
    'abc'
    >>> verify_session(make_session("abc", k, 60, now=0), k, now=90) is None
    True
    """
    try:
        token_id, expires, sig = value.split(".")
        expiry = int(expires)
    except ValueError:
        return None
    if not hmac.compare_digest(sig, _sign(f"{token_id}.{expires}", key)):
        return None
    if (time.time() if now is None else now) > expiry:
        return None
    return token_id
