"""Session-wide services for the tests: real Swift, a real sshd, distribution.

A test that needs a service which cannot start fails when CI=true and skips (saying why)
elsewhere; see `unavailable`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clirunner import Cli
from tests.services import unavailable

__all__ = ["unavailable"]


@pytest.fixture(scope="session")
def swift_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.services.swift import start_swift

    try:
        service = start_swift(tmp_path_factory.mktemp("swift"))
    except Exception as e:  # any failure to start means "unavailable"
        unavailable(f"cannot start OpenStack Swift: {e}")
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def sshd_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.services.sshd import start_sshd

    try:
        service = start_sshd(tmp_path_factory.mktemp("sshd"))
    except Exception as e:
        unavailable(f"cannot start OpenSSH sshd: {e}")
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def proxy(sshd_service: Any) -> Iterator[Any]:
    """A loopback TCP proxy to the test sshd that a test cuts on demand
    (`tests.services.tcp_faults.TcpFaultProxy`), the sshd's host key trusted at its port."""
    from tests.services.tcp_faults import TcpFaultProxy

    p = TcpFaultProxy(sshd_service.port)
    sshd_service.trust(p.port)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the user's real default store and credentials out of every test."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    # the manifest cache, beside tmp_path: tests that compare tmp_path's files see none
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path.parent / f"{tmp_path.name}-xdg-cache"))
    for var in list(os.environ):
        if var.startswith(("ST_", "OS_", "REGTOOL_")):
            monkeypatch.delenv(var)


@pytest.fixture
def cli() -> Cli:
    """`regtool` driven in-process: `cli("ls", path)`, `cli.json("ls", path)`."""
    return Cli()
