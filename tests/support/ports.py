"""Loopback ports for servers the tests start (never a fixed port)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port the OS just handed out and released: free until someone binds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
