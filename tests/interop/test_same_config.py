"""One `config.yml` starts Debian's distribution (`docker-registry serve`) and
`regtool serve` (its address moved by `REGISTRY_HTTP_ADDR`, as distribution takes it),
on a directory and on Swift: skopeo pulls from each what it pushed to the other, and
regtool reads every key of distribution's file without a warning."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.serve_proc import answers, start_serve, stop_serve
from tests.services import free_port
from tests.services import images as img
from tests.services.distribution import DistributionRegistry, filesystem_storage, swift_storage

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("image_tools")]


def _filesystem(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    return filesystem_storage(tmp_path / "root")


def _swift(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    service = request.getfixturevalue("swift_service")
    return swift_storage(service, f"same-config-{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=[_filesystem, _swift], ids=["filesystem", "swift"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    return request.param(request, tmp_path)  # type: ignore[no-any-return]


@pytest.fixture
def regtool_on() -> Iterator[Callable[[Path], str]]:
    """`regtool serve --config FILE` on a free port: its host. At the end each must stop
    on SIGTERM with exit 0, having warned about no key of the file."""
    procs: list[subprocess.Popen[str]] = []

    def start(config: Path) -> str:
        host = f"127.0.0.1:{free_port()}"
        env = {"REGISTRY_HTTP_ADDR": host}
        procs.append(start_serve(["--config", str(config)], answers(f"http://{host}"), env))
        return host

    yield start
    for proc in procs:
        out = stop_serve(proc)
        assert "regtool serve: warning" not in out, out  # every key of the file is known


def test_same_config_both_servers(
    storage: dict[str, Any],
    make_distribution: Callable[..., DistributionRegistry],
    regtool_on: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    distribution = make_distribution(storage)
    regtool = regtool_on(distribution.config_path)
    first = img.build_image(tmp_path / "oci", "first", size=200_000, layers=2)
    second = img.build_image(tmp_path / "oci", "second", size=100_000)

    assert img.push(first, distribution.host, "team/first", "1.0") == first.digest
    assert img.push(second, regtool, "team/second", "1.0") == second.digest

    assert img.pull(regtool, "team/first", "1.0", tmp_path / "p1") == first.digest
    assert img.pull(distribution.host, "team/second", "1.0", tmp_path / "p2") == second.digest
    catalog = httpx.get(f"http://{regtool}/v2/_catalog").json()
    assert catalog == {"repositories": ["team/first", "team/second"]}
