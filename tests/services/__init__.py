"""Real services the tests start: Swift, sshd, distribution, and image builders."""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """A service a test needs is missing: fail in CI, skip (with the reason) elsewhere."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"required service unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
