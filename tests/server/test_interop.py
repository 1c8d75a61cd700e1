"""distribution and `regtool serve` on the same directory: each serves what the other
stored, byte for byte, to a real skopeo."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from regtool.server.settings import ServerSettings
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry
from tests.services import images as img
from tests.services.distribution import (
    DistributionRegistry,
    filesystem_storage,
    swift_storage,
)

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("image_tools")]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _sample(tmp_path: Path) -> tuple[img.Image, img.ImageIndex]:
    layout = tmp_path / "oci"
    return img.build_image(layout, "app", size=20_000, layers=2), img.build_index(layout, "multi")


def _check_pulls(host: str, pushed: dict[tuple[str, str], str], tmp_path: Path) -> None:
    for n, ((repo, tag), digest) in enumerate(sorted(pushed.items())):
        assert img.pull(host, repo, tag, tmp_path / f"pull-{n}") == digest, (repo, tag)


def test_distribution_serves_what_regtool_stored(
    serve_registry: Callable[..., RunningRegistry],
    make_distribution: Callable[..., DistributionRegistry],
    tmp_path: Path,
    cli: Any,
) -> None:
    root = tmp_path / "root"
    ours = serve_registry(LocalDriver(root), root)
    image, index = _sample(tmp_path)
    pushed = {
        ("library/exampleapp", "1.0"): img.push(image, ours.host, "library/exampleapp", "1.0"),
        ("library/exampleapp", "docker"): img.push(
            image, ours.host, "library/exampleapp", "docker", format="v2s2"
        ),
        ("team/multi", "latest"): img.push(index, ours.host, "team/multi", "latest"),
    }
    theirs = make_distribution(filesystem_storage(root))
    _check_pulls(theirs.host, pushed, tmp_path / "from-distribution")
    for repo, tag in pushed:
        assert img.inspect_raw(theirs.host, repo, tag) == img.inspect_raw(ours.host, repo, tag)

    doc = cli.json("ls", str(root))
    listed = {(r["name"], t["tag"]): t["digest"] for r in doc["repositories"] for t in r["tags"]}
    assert listed == pushed
    # distribution's own GC, run on what we wrote, finds every blob in use
    out = theirs.garbage_collect(dry_run=True)
    assert "0 blobs and 0 manifests eligible for deletion" in out, out


def test_regtool_serves_what_distribution_stored(
    serve_registry: Callable[..., RunningRegistry],
    distribution_fs: Any,
    tmp_path: Path,
) -> None:
    image, index = _sample(tmp_path)
    host = distribution_fs.host
    pushed = {
        ("library/exampleapp", "1.0"): img.push(image, host, "library/exampleapp", "1.0"),
        ("team/multi", "latest"): img.push(index, host, "team/multi", "latest"),
    }
    ours = serve_registry(LocalDriver(distribution_fs.root))
    _check_pulls(ours.host, pushed, tmp_path / "from-regtool")
    # and a push to regtool on top is served by distribution at once
    more = img.build_image(tmp_path / "oci", "more", size=5000)
    digest = img.push(more, ours.host, "library/exampleapp", "2.0")
    assert img.pull(host, "library/exampleapp", "2.0", tmp_path / "back") == digest


@pytest.mark.swift
def test_swift_store_shared_with_distribution(
    serve_registry: Callable[..., RunningRegistry],
    make_distribution: Callable[..., DistributionRegistry],
    swift_service: Any,
    tmp_path: Path,
) -> None:
    """On Swift too (`files/docker/registry/v2`, large objects as DLOs): distribution
    serves what regtool pushed, and regtool what distribution pushed."""
    container = f"serve-interop-{uuid.uuid4().hex[:8]}"
    ours = serve_registry(swift_service.driver(container, segment_size=64 * 1024))
    theirs = make_distribution(swift_storage(swift_service, container))
    image, index = _sample(tmp_path)
    big = img.build_image(tmp_path / "oci", "big", size=300_000)  # a layer of 5 segments
    pushed = {
        ("library/exampleapp", "1.0"): img.push(big, ours.host, "library/exampleapp", "1.0"),
        ("team/multi", "latest"): img.push(index, ours.host, "team/multi", "latest"),
    }
    _check_pulls(theirs.host, pushed, tmp_path / "from-distribution")
    theirs_pushed = {("team/app", "2.0"): img.push(image, theirs.host, "team/app", "2.0")}
    _check_pulls(ours.host, theirs_pushed, tmp_path / "from-regtool")


def test_catalog_pages_alike_on_both_servers(
    serve_registry: Callable[..., RunningRegistry],
    make_distribution: Callable[..., DistributionRegistry],
    tmp_path: Path,
) -> None:
    """`_catalog` lists repositories in distribution's order (a depth-first walk, so
    `ns/app`, `ns/app/sub`, then `ns/app-x`; a sub-repository named with a digit before
    its parent) and reads `last` as distribution does, so a client can page across
    both servers on one store."""
    root = tmp_path / "root"
    ours = serve_registry(LocalDriver(root), root)
    names = ["ns/app", "ns/app/sub", "ns/app-x", "ns/app/0sub", "ns/app.x", "ns/app_x"]
    names += ["ns/app__y", "a", "a0", "a/b", "a-b", "b"]
    config = b"{}"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
            "layers": [],
        }
    ).encode()
    with httpx.Client(base_url=ours.url, timeout=30) as client:
        for name in names:
            r = client.post(
                f"/v2/{name}/blobs/uploads/", params={"digest": sha(config)}, content=config
            )
            assert r.status_code == 201, r.text
            r = client.put(
                f"/v2/{name}/manifests/t", content=manifest, headers={"Content-Type": OCI_MANIFEST}
            )
            assert r.status_code == 201, r.text
    theirs = make_distribution(filesystem_storage(root))
    with (
        httpx.Client(base_url=ours.url, timeout=30) as a,
        httpx.Client(base_url=theirs.url, timeout=30) as b,
    ):
        everything = b.get("/v2/_catalog").json()["repositories"]
        assert sorted(everything) == sorted(names)
        assert a.get("/v2/_catalog").json()["repositories"] == everything
        assert everything.index("ns/app") < everything.index("ns/app/sub")
        assert everything.index("ns/app/sub") < everything.index("ns/app-x")
        # page with n=5, alternating servers, each page's last token handed to the other
        pages: list[str] = []
        clients, last = [a, b], ""
        for turn in range(10):
            params = {"n": "5", **({"last": last} if last else {})}
            r = clients[turn % 2].get("/v2/_catalog", params=params)
            page = r.json()["repositories"]
            pages += page
            if "Link" not in r.headers:
                break
            last = page[-1]
            assert f"last={quote(last, safe='')}" in r.headers["Link"]
        assert pages == everything
        for last in everything:
            params = {"last": last, "n": "3"}
            assert (
                a.get("/v2/_catalog", params=params).json()
                == b.get("/v2/_catalog", params=params).json()
            ), last


def test_catalog_maxentries_bounds_n_alike_on_both_servers(
    serve_registry: Callable[..., RunningRegistry],
    make_distribution: Callable[..., DistributionRegistry],
    tmp_path: Path,
) -> None:
    """`catalog.maxentries` as distribution 2.8.2 enforces it: an `n` past it is 400
    `PAGINATION_NUMBER_INVALID` with `{"n": n}` as detail; no `n` (or a negative one,
    or one that is no number) is 100, and every page at most `maxentries`."""
    root = tmp_path / "root"
    ours = serve_registry(LocalDriver(root), root, settings=ServerSettings(catalog_max_entries=3))
    config = b"{}"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
            "layers": [],
        }
    ).encode()
    with httpx.Client(base_url=ours.url, timeout=30) as client:
        for name in ("a", "b", "c", "d", "e"):
            r = client.post(
                f"/v2/{name}/blobs/uploads/", params={"digest": sha(config)}, content=config
            )
            assert r.status_code == 201, r.text
            r = client.put(
                f"/v2/{name}/manifests/t", content=manifest, headers={"Content-Type": OCI_MANIFEST}
            )
            assert r.status_code == 201, r.text
    theirs = make_distribution(filesystem_storage(root), catalog={"maxentries": 3})
    with (
        httpx.Client(base_url=ours.url, timeout=30) as a,
        httpx.Client(base_url=theirs.url, timeout=30) as b,
    ):
        for n in (None, "0", "2", "3", "4", "1000", "-1", "x"):
            params = {} if n is None else {"n": n}
            ra, rb = a.get("/v2/_catalog", params=params), b.get("/v2/_catalog", params=params)
            assert ra.status_code == rb.status_code, n
            if rb.status_code == 400:
                (ea,), (eb,) = ra.json()["errors"], rb.json()["errors"]
                assert (ea["code"], ea["detail"]) == (eb["code"], eb["detail"]), n
                assert eb["code"] == "PAGINATION_NUMBER_INVALID"
                continue
            assert ra.json() == rb.json(), n
            assert ("Link" in ra.headers) == ("Link" in rb.headers), n
        assert a.get("/v2/_catalog").json()["repositories"] == ["a", "b", "c"]
        assert a.get("/v2/_catalog", params={"n": "4"}).status_code == 400
