"""A V2 store built by the real thing: images pushed with skopeo into distribution
(filesystem driver), built once per test session and copied for each damage case.

    store = pushed_store(tmp_path_factory)     # session-wide, never modified
    copy = store.copy(tmp_path)                # a private copy to damage
    copy.layout.blob_data(Digest.parse(...))   # paths only from the layout

Contents (repository:tag -> what):
    team/app:1.0        OCI image, 2 layers
    team/app:docker     the same image as Docker schema 2 (same config and layers)
    mirror/app:1.0      the same OCI image again: every blob shared with team/app
    multi:latest        OCI index over linux/amd64 and linux/arm64 images
    solo:1              an OCI image sharing nothing
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from regtool.layout.v2 import FILESYSTEM_ROOT, V2Layout
from regtool.oci import Digest
from regtool.storage.local import LocalDriver
from tests.services import unavailable
from tests.services.distribution import filesystem_storage, registry_binary, start_distribution
from tests.services.images import Image, ImageIndex, build_image, build_index, push, tools_missing


@dataclass
class PushedStore:
    root: Path  # distribution's rootdirectory
    images: dict[str, Image | ImageIndex] = field(default_factory=dict)  # "repo:tag" ->
    digests: dict[str, str] = field(default_factory=dict)  # "repo:tag" -> manifest digest

    @property
    def layout(self) -> V2Layout:
        return V2Layout(LocalDriver(self.root), FILESYSTEM_ROOT)

    def copy(self, dest: Path) -> PushedStore:
        shutil.copytree(self.root, dest)
        return PushedStore(dest, self.images, self.digests)

    def path(self, relative: str) -> Path:
        """The local file of a driver path (from a layout path function)."""
        return self.root / relative

    def blob_file(self, digest: str) -> Path:
        return self.path(self.layout.blob_data(Digest.parse(digest)))

    def tags(self) -> set[tuple[str, str]]:
        return {tuple(ref.split(":", 1)) for ref in self.digests}  # type: ignore[misc]


_built: dict[str, PushedStore] = {}


def pushed_store(factory: pytest.TempPathFactory) -> PushedStore:
    if "store" not in _built:
        missing = tools_missing()
        if missing or registry_binary() is None:
            unavailable(f"needs distribution, umoci and skopeo (missing: {missing or 'registry'})")
        _built["store"] = _build(factory.mktemp("pushed"))
    return _built["store"]


def _build(tmp: Path) -> PushedStore:
    store = PushedStore(tmp / "root")
    try:
        registry = start_distribution(tmp / "registry", filesystem_storage(store.root))
    except Exception as e:
        unavailable(f"cannot start distribution: {e}")
    try:
        oci = tmp / "oci"
        app = build_image(oci, "app", size=3000, layers=2)
        solo = build_image(oci, "solo", size=2000)
        multi = build_index(oci, "multi", size=1500)
        for ref, image, fmt in (
            ("team/app:1.0", app, None),
            ("team/app:docker", app, "v2s2"),
            ("mirror/app:1.0", app, None),
            ("multi:latest", multi, None),
            ("solo:1", solo, None),
        ):
            repo, tag = ref.split(":")
            store.digests[ref] = push(image, registry.host, repo, tag, format=fmt)  # type: ignore[arg-type]
            store.images[ref] = image
    finally:
        registry.stop()
    return store
