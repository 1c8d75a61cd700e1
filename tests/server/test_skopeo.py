"""Real skopeo pushes to and pulls from `regtool serve` on a local directory, SFTP and
Swift: a single image (OCI and Docker schema 2) and a multi-arch index, then `ls` reads
the store the server wrote."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from regtool.inspect.listing import list_registry
from regtool.inspect.verify import verify_registry
from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry
from tests.services import images as img

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("image_tools")]

#: Small Swift segments, so a layer of the test image spans several of them.
SEGMENT_SIZE = 64 * 1024


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    root = tmp_path / "store"
    root.mkdir()
    return LocalDriver(root)


def _sftp(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    service = request.getfixturevalue("sshd_service")
    return service.driver(f"serve-{uuid.uuid4().hex[:8]}")  # type: ignore[no-any-return]


def _swift(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    service = request.getfixturevalue("swift_service")
    driver = service.driver(f"serve-{uuid.uuid4().hex[:8]}", segment_size=SEGMENT_SIZE)
    return driver  # type: ignore[no-any-return]


@pytest.fixture(params=[_local, _sftp, _swift], ids=["local", "sftp", "swift"])
def registry(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    serve_registry: Callable[..., RunningRegistry],
) -> Any:
    driver = request.param(request, tmp_path)
    try:
        yield serve_registry(driver)
    finally:
        driver.close()


def test_push_and_pull(registry: RunningRegistry, tmp_path: Path) -> None:
    layout = tmp_path / "oci"
    image = img.build_image(layout, "app", size=150_000, layers=2)
    index = img.build_index(layout, "multi", size=2000)
    host = registry.host

    assert img.push(image, host, "team/app", "1.0") == image.digest
    docker_digest = img.push(image, host, "team/app", "docker", format="v2s2")
    assert img.push(index, host, "team/multi", "latest") == index.digest
    # the same blobs again into another repository: skopeo mounts them across
    assert img.push(image, host, "other/app", "1.0") == image.digest

    assert img.inspect_raw(host, "team/app", "1.0") == image.manifest_bytes()
    assert img.inspect_raw(host, "team/multi", "latest") == index.manifest_bytes()
    assert img.pull(host, "team/app", "1.0", tmp_path / "p1") == image.digest
    assert img.pull(host, "team/app", "docker", tmp_path / "p2") == docker_digest
    assert img.pull(host, "team/multi", "latest", tmp_path / "p3") == index.digest
    assert img.pull(host, "other/app", image.digest, tmp_path / "p4") == image.digest
    pulled = img.load_image(tmp_path / "p1", "1.0")
    assert pulled.layer_digests == image.layer_digests

    # What the server stored, read once it is done (its last pull records written), as
    # `regtool ls` would: the walk below does not share the connection with its writes.
    registry.stop()
    listing = list_registry(registry.layout, "served")
    assert not listing.warnings
    tags = {(r.name, t.tag): t for r in listing.repositories for t in r.tags}
    assert {k: t.digest for k, t in tags.items()} == {
        ("other/app", "1.0"): image.digest,
        ("team/app", "1.0"): image.digest,
        ("team/app", "docker"): docker_digest,
        ("team/multi", "latest"): index.digest,
    }
    assert tags[("team/multi", "latest")].platforms == ["linux/amd64", "linux/arm64"]
    assert tags[("team/app", "1.0")].size == sum(b.size for b in image.blobs)
    # everything served is whole: every tag, link and blob re-hashed
    verification = verify_registry(registry.layout, "served", everything=True, blobs=True)
    assert verification.problems == []
    assert verification.count("ok") == len(tags)
    # finished uploads leave nothing behind
    leftovers = [
        e.path for e in registry.driver.walk(registry.layout.root) if "/_uploads/" in e.path
    ]
    assert leftovers == []


def test_ls_cli_on_served_directory(
    local_registry: RunningRegistry, tmp_path: Path, cli: Any
) -> None:
    image = img.build_image(tmp_path / "oci", "v1", size=1000)
    img.push(image, local_registry.host, "library/exampleapp", "1.0")
    doc = cli.json("ls", str(local_registry.root))
    (repo,) = doc["repositories"]
    assert repo["name"] == "library/exampleapp"
    assert [(t["tag"], t["digest"]) for t in repo["tags"]] == [("1.0", image.digest)]


def test_artifact_with_subject(registry: RunningRegistry, tmp_path: Path) -> None:
    """An SBOM-like OCI artifact whose `subject` is an image, pushed and pulled with
    skopeo: the referrers API lists it, and ls calls it an artifact."""
    layout = tmp_path / "oci"
    image = img.build_image(layout, "app", size=1000)
    config = b"{}"
    sbom = b'{"spdxVersion": "SPDX-2.3"}'
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": img.OCI_MANIFEST,
            "artifactType": "application/spdx+json",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": img.write_blob(layout, config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/spdx+json",
                    "digest": img.write_blob(layout, sbom),
                    "size": len(sbom),
                }
            ],
            "subject": {"mediaType": img.OCI_MANIFEST, "digest": image.digest, "size": image.size},
        }
    ).encode()
    artifact_digest = img.write_blob(layout, manifest)
    img.set_tag(
        layout,
        "sbom",
        {"mediaType": img.OCI_MANIFEST, "digest": artifact_digest, "size": len(manifest)},
    )
    artifact = img.load_image(layout, "sbom")

    assert img.push(image, registry.host, "app", "1.0") == image.digest
    assert img.push(artifact, registry.host, "app", "sbom") == artifact_digest
    referrers = httpx.get(f"{registry.url}/v2/app/referrers/{image.digest}").json()
    assert [(m["digest"], m["artifactType"]) for m in referrers["manifests"]] == [
        (artifact_digest, "application/spdx+json")
    ]
    assert img.pull(registry.host, "app", "sbom", tmp_path / "pulled") == artifact_digest
    kinds = {
        t.tag: t.kind for r in list_registry(registry.layout, "x").repositories for t in r.tags
    }
    assert kinds == {"1.0": "image", "sbom": "artifact"}
