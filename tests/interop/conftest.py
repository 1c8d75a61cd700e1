"""Fixtures that run the real distribution registry and real image tools.

- `image_tools`: session; skips (fails in CI) unless umoci and skopeo are installed.
- `distribution_fs`: a fresh filesystem-backed registry per test, as
  `DistributionFS(registry, root)`; `root` is distribution's `rootdirectory`, so the tree
  is under `root / "docker/registry/v2"` (also `.v2`).
- `distribution_swift`: a fresh registry per test on the session `swift_service`, in a
  new container (no prefix), as `DistributionSwift(registry, service, container, prefix)`.
- `make_distribution`: a factory `make_distribution(storage, **kw)` for anything else
  (a Swift prefix, small segments, delete disabled, two registries on one store...);
  everything it starts is stopped after the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.services import unavailable
from tests.services.distribution import (
    DistributionRegistry,
    filesystem_storage,
    registry_binary,
    start_distribution,
    swift_storage,
)
from tests.services.images import tools_missing


class DistributionFS(NamedTuple):
    registry: DistributionRegistry
    root: Path

    @property
    def v2(self) -> Path:
        return self.root / "docker" / "registry" / "v2"

    @property
    def host(self) -> str:
        return self.registry.host

    @property
    def url(self) -> str:
        return self.registry.url


class DistributionSwift(NamedTuple):
    registry: DistributionRegistry
    service: Any  # tests.services.swift.SwiftService
    container: str
    prefix: str | None

    @property
    def v2_prefix(self) -> str:
        """Object-name prefix of distribution's tree: `[<prefix>/]files/docker/registry/v2/`."""
        return (f"{self.prefix.strip('/')}/" if self.prefix else "") + "files/docker/registry/v2/"

    @property
    def host(self) -> str:
        return self.registry.host

    @property
    def url(self) -> str:
        return self.registry.url


def _require_binary() -> None:
    if registry_binary() is None:
        unavailable("distribution is not installed (Debian package docker-registry)")


@pytest.fixture(scope="session")
def image_tools() -> None:
    missing = tools_missing()
    if missing:
        unavailable(f"image tools not installed: {', '.join(missing)} (Debian packages)")


@pytest.fixture
def make_distribution(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., DistributionRegistry]]:
    _require_binary()
    started: list[DistributionRegistry] = []

    def make(storage: dict[str, Any], **kwargs: Any) -> DistributionRegistry:
        tmp = tmp_path_factory.mktemp("distribution")
        try:
            reg = start_distribution(tmp, storage, **kwargs)
        except Exception as e:
            unavailable(f"cannot start distribution: {e}")
        started.append(reg)
        return reg

    yield make
    for reg in started:
        reg.stop()


@pytest.fixture
def distribution_fs(
    make_distribution: Callable[..., DistributionRegistry], tmp_path: Path
) -> DistributionFS:
    root = tmp_path / "distribution-root"
    return DistributionFS(make_distribution(filesystem_storage(root)), root)


@pytest.fixture
def distribution_swift(
    make_distribution: Callable[..., DistributionRegistry], swift_service: Any
) -> DistributionSwift:
    container = f"dist-{uuid.uuid4().hex[:10]}"
    reg = make_distribution(swift_storage(swift_service, container))
    return DistributionSwift(reg, swift_service, container, None)
