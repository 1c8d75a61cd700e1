"""gc run over and over while skopeo pushes into a registry on the same store:
distribution on a directory and on Swift, and `regtool serve`.

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
from typing import Any

import pytest

from regtool.gc import GcOptions, collect
from regtool.layout.v2 import FILESYSTEM_ROOT, SWIFT_ROOT, V2Layout
from regtool.oci import Digest
from regtool.storage.local import LocalDriver
from tests.server.conftest import start_registry
from tests.services.images import Image, ToolError, build_image, delete, pull, push

# Longer than a registry takes to store a manifest here, also on a loaded machine beside
# the other tests' servers, and short enough for many runs.
SETTLE = timedelta(seconds=2)
MIN_AGES = pytest.mark.parametrize(
    "min_age", [timedelta(0), timedelta(minutes=10)], ids=["min-age-0", "min-age-10m"]
)


@MIN_AGES
def test_pushes_into_distribution(
    image_tools: None, distribution_fs: Any, tmp_path: Path, min_age: timedelta
) -> None:
    layout = V2Layout(LocalDriver(distribution_fs.root), FILESYSTEM_ROOT)
    _pushes_during_gc(distribution_fs.host, layout, distribution_fs.root, tmp_path, min_age)


@MIN_AGES
def test_pushes_into_regtool_serve(image_tools: None, tmp_path: Path, min_age: timedelta) -> None:
    root = tmp_path / "store"
    root.mkdir()
    served = start_registry(LocalDriver(root), root)
    try:
        _pushes_during_gc(served.host, served.layout, root, tmp_path, min_age)
    finally:
        served.stop()


def test_pushes_into_distribution_on_swift(
    image_tools: None, distribution_swift: Any, tmp_path: Path
) -> None:
    # Swift keeps its own object times, so only --min-age 0 makes fresh garbage old; and
    # distribution takes seconds per push there, so fewer images.
    driver = distribution_swift.service.driver(distribution_swift.container)
    layout = V2Layout(driver, SWIFT_ROOT)
    _pushes_during_gc(distribution_swift.host, layout, None, tmp_path, timedelta(0), images=4)


def _pushes_during_gc(
    host: str,
    layout: V2Layout,
    root: Path | None,
    tmp_path: Path,
    min_age: timedelta,
    images: int = 12,
) -> None:
    oci = tmp_path / "oci"
    base = build_image(oci, "base", size=20_000)
    built = [
        build_image(oci, f"img{i}", size=20_000, layers=3, base=base if i % 2 else None)
        for i in range(images)
    ]
    garbage = build_image(oci, "garbage", size=5_000)
    delete(host, "old", push(garbage, host, "old", "gone"))
    if min_age:
        assert root is not None
        _backdate(layout, root, garbage, "old")
    refs = {f"app{i % 2}:t{i}": image for i, image in enumerate(built)}

    refused: dict[str, str] = {}
    gc_running, finished = threading.Event(), threading.Event()

    def pusher() -> None:
        try:
            gc_running.wait(10)
            for ref, image in refs.items():
                repo, tag = ref.split(":")
                try:
                    push(image, host, repo, tag)
                except ToolError as e:
                    refused[ref] = str(e)
        finally:
            finished.set()

    thread = threading.Thread(target=pusher)
    thread.start()
    results = []
    try:
        while not finished.is_set():
            gc_running.set()
            options = GcOptions(min_age=min_age, settle=SETTLE, jobs=4)
            results.append(collect(layout, "test", options))
            finished.wait(0.1)  # pauses in which some pushes get through
    finally:
        thread.join()

    # Every run started while pushes were going on (they wait for the first); how many
    # pushes a run overlaps, and so how many are refused at --min-age 0, is up to timing.
    assert results and all(r.ok for r in results), [r.failed for r in results]
    assert garbage.digests <= {i.name for r in results for i in r.items if i.kind == "blob"}
    # A refused push is one whose blobs went before its manifest landed.
    assert all("blob unknown" in why for why in refused.values()), refused
    if min_age:
        assert refused == {}
    for ref in refused:  # pushed again once gc is done, they succeed
        repo, tag = ref.split(":")
        push(refs[ref], host, repo, tag)
    for ref, image in refs.items():
        repo, tag = ref.split(":")
        assert pull(host, repo, tag, tmp_path / "pulled" / repo, dest_tag=tag) == image.digest


def _backdate(layout: V2Layout, root: Path, image: Image, repo: str) -> None:
    """Make the image's blobs and the repository's files a day old."""
    day_ago = time.time() - 86400
    paths = [root / layout.blob_data(Digest.parse(d)) for d in image.digests]
    paths += [p for p in (root / layout.repository_dir(repo)).rglob("*") if p.is_file()]
    for path in paths:
        os.utime(path, (day_ago, day_ago))
