"""gc run over and over while skopeo pushes into a registry (distribution, then
`regtool serve`) on the same store.

A push's blobs are unreferenced until its manifest lands. With `--min-age 0` they are
fair game as soon as the next gc starts: a push can then find its blobs gone, and the
registry refuses its manifest (a visible failure, retried later); but a push must never
succeed and leave a broken image. With a min-age longer than a push takes, every push
succeeds, while garbage older than that still goes."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from regtool.gc import GcOptions, collect
from regtool.layout.v2 import FILESYSTEM_ROOT, V2Layout
from regtool.oci import Digest
from regtool.storage.local import LocalDriver
from tests.server.conftest import start_registry
from tests.services.images import Image, ToolError, build_image, delete, pull, push

# Longer than distribution takes to store a manifest here, and short enough for many runs.
SETTLE = timedelta(seconds=0.5)


def _backdate(layout: V2Layout, root: Path, image: Image, repo: str) -> None:
    """Make the image's blobs and the repository's files a day old."""
    day_ago = time.time() - 86400
    paths = [root / layout.blob_data(Digest.parse(d)) for d in image.digests]
    paths += [p for p in (root / layout.repository_dir(repo)).rglob("*") if p.is_file()]
    for path in paths:
        os.utime(path, (day_ago, day_ago))


@pytest.fixture(params=["distribution", "regtool-serve"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    """(host, storage root) of a registry on a fresh directory: distribution, or ours."""
    if request.param == "distribution":
        dist = request.getfixturevalue("distribution_fs")
        return dist.host, dist.root
    root = tmp_path / "store"
    root.mkdir()
    served = start_registry(LocalDriver(root), root)
    request.addfinalizer(served.stop)
    return served.host, root


@pytest.mark.parametrize("min_age", [timedelta(0), timedelta(minutes=10)], ids=["0", "10m"])
def test_pushes_during_gc_pull_completely(
    image_tools: None, registry: tuple[str, Path], tmp_path: Path, min_age: timedelta
) -> None:
    host, root = registry
    layout = V2Layout(LocalDriver(root), FILESYSTEM_ROOT)
    oci = tmp_path / "oci"
    base = build_image(oci, "base", size=20_000)
    images = [
        build_image(oci, f"img{i}", size=20_000, layers=3, base=base if i % 2 else None)
        for i in range(12)
    ]
    garbage = build_image(oci, "garbage", size=5_000)
    delete(host, "old", push(garbage, host, "old", "gone"))
    _backdate(layout, root, garbage, "old")
    refs = {f"app{i % 2}:t{i}": image for i, image in enumerate(images)}

    pushed: dict[str, Image] = {}
    refused: list[str] = []
    gc_running, finished = threading.Event(), threading.Event()

    def pusher() -> None:
        try:
            gc_running.wait(10)
            for ref, image in refs.items():
                repo, tag = ref.split(":")
                try:
                    push(image, host, repo, tag)
                    pushed[ref] = image
                except ToolError as e:
                    assert "blob unknown" in str(e)  # its blobs went before its manifest
                    refused.append(ref)
        finally:
            finished.set()

    thread = threading.Thread(target=pusher)
    thread.start()
    runs, deleted = 0, set()
    while not finished.is_set():
        gc_running.set()
        result = collect(layout, "test", GcOptions(min_age=min_age, settle=SETTLE, jobs=4))
        assert result.ok, result.failed
        runs += 1
        deleted |= {i.name for i in result.items if i.kind == "blob"}
        finished.wait(0.1)  # pauses in which some pushes get through
    thread.join()

    assert runs >= 2  # every run started while pushes were going on
    assert garbage.digests <= deleted
    if min_age:
        assert refused == []
    else:
        assert len(pushed) >= 1  # some pushes succeeded between the runs
    for ref in refused:  # pushed again once gc is done, they succeed
        repo, tag = ref.split(":")
        push(refs[ref], host, repo, tag)
    for ref, image in refs.items():
        repo, tag = ref.split(":")
        assert pull(host, repo, tag, tmp_path / "pulled" / repo, dest_tag=tag) == image.digest
