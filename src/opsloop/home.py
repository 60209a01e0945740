"""The data home: where opsloop keeps its stores, its session key and the first admin token."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


class HomeError(Exception):
    """The home cannot be used (one-line message)."""


ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105 - a file name, not a secret
SESSION_KEY_FILE = "session.key"


def prepare_home(home: Path) -> Path:
    """Create the home if needed and check that it is a writable directory."""
    try:
        if not home.exists():
            home.mkdir(parents=True, mode=0o700)
    except OSError as exc:
        raise HomeError(f"cannot create home {home}: {exc.strerror}") from None
    if not home.is_dir():
        raise HomeError(f"home {home} is not a directory")
    probe = home / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise HomeError(f"home {home} is not writable: {exc.strerror}") from None
    return home


def write_private(path: Path, content: str) -> None:
    """Write ``content`` to a new file readable by its owner only (mode 0600), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    os.chmod(path, 0o600)


def session_key(home: Path) -> bytes:
    """The key that signs dashboard session cookies, created on first use."""
    path = home / SESSION_KEY_FILE
    if not path.exists():
        write_private(path, secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())
