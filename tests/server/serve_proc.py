"""`regtool serve` as a separate process, started and stopped with SIGTERM as a service
manager does:

    proc = start_serve(["--config", str(cfg)], ready=lambda: sock.exists())
    out = stop_serve(proc)        # SIGTERM; it must exit 0 without a traceback
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import httpx

REGTOOL = [sys.executable, "-c", "from regtool.cli.main import main; main()"]


def answers(url: str) -> Callable[[], bool]:
    """A readiness check: `GET url/v2/` gets any answer."""

    def check() -> bool:
        try:
            httpx.get(f"{url}/v2/", timeout=1)
        except httpx.TransportError:
            return False
        return True

    return check


def start_serve(
    args: list[str], ready: Callable[[], bool], env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`regtool serve ARGS`, once `ready()` holds (within 30 s)."""
    proc = subprocess.Popen(
        [*REGTOOL, "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 30
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"regtool serve did not start: {proc.communicate()[0]}")
        time.sleep(0.05)
    return proc


def stop_serve(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    """SIGTERM, then its output; it must exit 0 without a traceback."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
    return out
