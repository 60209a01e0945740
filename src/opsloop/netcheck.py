"""Checks on the network address the server will bind to."""

from __future__ import annotations

import errno
import socket


class PortInUse(Exception):
    """The port is taken (one-line message)."""


def ensure_port_free(host: str, port: int) -> None:
    """Raise :class:`PortInUse` when ``host:port`` cannot be bound."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"port {port} on {host} is already in use (choose another with --port "
                    "or OPSLOOP_PORT)"
                ) from None
            raise PortInUse(f"cannot bind {host}:{port}: {exc.strerror}") from None
