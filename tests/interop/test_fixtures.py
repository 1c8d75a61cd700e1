"""The interop fixtures themselves: real images pushed by skopeo into real distribution land
in distribution's storage layout, on the filesystem driver and on the Swift driver."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.interop.conftest import DistributionSwift
from tests.services.distribution import swift_storage
from tests.services.images import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    build_image,
    build_index,
    inspect_raw,
    load_image,
    pull,
    push,
    sha256_digest,
)

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("image_tools")]

FORMATS = [None, "v2s2"]
FORMAT_IDS = ["oci", "v2s2"]


class Store(Protocol):
    """Read-only view of distribution's tree, paths relative to `docker/registry/v2/`."""

    host: str

    def read(self, rel: str) -> bytes: ...
    def exists(self, rel: str) -> bool: ...
    def names(self) -> set[str]: ...


class FSStore:
    def __init__(self, dist: Any) -> None:
        self.dist = dist
        self.host = dist.host
        self.v2: Path = dist.v2

    def read(self, rel: str) -> bytes:
        return (self.v2 / rel).read_bytes()

    def exists(self, rel: str) -> bool:
        return (self.v2 / rel).is_file()

    def names(self) -> set[str]:
        return {p.relative_to(self.v2).as_posix() for p in self.v2.rglob("*") if p.is_file()}


class SwiftStore:
    def __init__(self, dist: Any) -> None:
        from swiftclient.client import Connection

        self.dist = dist
        self.host = dist.host
        self.prefix = dist.v2_prefix
        svc = dist.service
        self.conn = Connection(authurl=svc.auth_url, user=svc.user, key=svc.key, retries=2)

    def read(self, rel: str) -> bytes:
        _, body = self.conn.get_object(self.dist.container, self.prefix + rel)
        return body

    def head(self, rel: str) -> dict[str, str]:
        return self.conn.head_object(self.dist.container, self.prefix + rel)

    def exists(self, rel: str) -> bool:
        from swiftclient.exceptions import ClientException

        try:
            self.head(rel)
        except ClientException as e:
            if e.http_status == 404:
                return False
            raise
        return True

    def all_objects(self) -> list[dict[str, Any]]:
        _, objs = self.conn.get_container(self.dist.container, full_listing=True)
        return objs

    def names(self) -> set[str]:
        return {
            o["name"][len(self.prefix) :]
            for o in self.all_objects()
            if o["name"].startswith(self.prefix)
        }


@pytest.fixture(params=["fs", "swift"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "fs":
        return FSStore(request.getfixturevalue("distribution_fs"))
    return SwiftStore(request.getfixturevalue("distribution_swift"))


def blob_rel(digest: str) -> str:
    hexpart = digest.removeprefix("sha256:")
    return f"blobs/sha256/{hexpart[:2]}/{hexpart}/data"


def repo_rel(repo: str, *parts: str) -> str:
    return "/".join(("repositories", repo, *parts))


def digest_rel(digest: str) -> str:
    return "sha256/" + digest.removeprefix("sha256:")


def assert_blob(store: Store, digest: str) -> bytes:
    data = store.read(blob_rel(digest))
    assert sha256_digest(data) == digest
    return data


def assert_tagged(store: Store, repo: str, tag: str, digest: str) -> None:
    """Tag link exactly the digest, the tag's index entry, the revision link, the blob."""
    assert store.read(repo_rel(repo, "_manifests/tags", tag, "current/link")) == digest.encode()
    index_link = repo_rel(repo, "_manifests/tags", tag, "index", digest_rel(digest), "link")
    assert store.read(index_link) == digest.encode()
    assert_revision(store, repo, digest)


def assert_revision(store: Store, repo: str, digest: str) -> None:
    link = repo_rel(repo, "_manifests/revisions", digest_rel(digest), "link")
    assert store.read(link) == digest.encode()
    assert_blob(store, digest)


def assert_layer_link(store: Store, repo: str, digest: str) -> None:
    link = repo_rel(repo, "_layers", digest_rel(digest), "link")
    assert store.read(link) == digest.encode()
    assert_blob(store, digest)


@pytest.mark.parametrize("fmt", FORMATS, ids=FORMAT_IDS)
def test_single_image_lands_in_distribution_layout(
    store: Store, tmp_path: Path, fmt: str | None
) -> None:
    img = build_image(tmp_path / "oci", "v1", size=3000, layers=2)
    assert img.platform == "linux/amd64"
    assert len(img.layers) == 2 and len(set(img.layer_digests)) == 2
    assert img.config_json()["architecture"] == "amd64"

    digest = push(img, store.host, "team/app", "v1", format=fmt)

    raw = inspect_raw(store.host, "team/app", "v1")
    assert sha256_digest(raw) == digest
    manifest = json.loads(raw)
    if fmt is None:
        assert digest == img.digest
        assert raw == img.manifest_bytes()
        # umoci 0.4.7 writes no "mediaType" in its manifests: readers must infer it
        assert manifest.get("mediaType", OCI_MANIFEST) == OCI_MANIFEST
    else:
        assert digest != img.digest
        assert manifest["mediaType"] == DOCKER_MANIFEST
        assert manifest["config"]["mediaType"] == DOCKER_CONFIG
        assert {x["mediaType"] for x in manifest["layers"]} == {DOCKER_LAYER_GZIP}
    # conversion keeps config and layer blobs
    assert manifest["config"]["digest"] == img.config_digest
    assert [x["digest"] for x in manifest["layers"]] == img.layer_digests

    assert_tagged(store, "team/app", "v1", digest)
    for blob in img.blobs:
        assert_layer_link(store, "team/app", blob.digest)
        assert len(store.read(blob_rel(blob.digest))) == blob.size
    # distribution links only config and layers into _layers, never the manifest
    assert not store.exists(repo_rel("team/app", "_layers", digest_rel(digest), "link"))

    pulled = tmp_path / "pulled"
    assert pull(store.host, "team/app", "v1", pulled) == digest
    back = load_image(pulled, "v1")
    assert back.digest == digest
    assert back.layer_digests == img.layer_digests
    assert pull(store.host, "team/app", digest, pulled) == digest


@pytest.mark.parametrize("fmt", FORMATS, ids=FORMAT_IDS)
def test_multiarch_index_lands_in_distribution_layout(
    store: Store, tmp_path: Path, fmt: str | None
) -> None:
    idx = build_index(tmp_path / "oci", "multi", size=2048)
    assert idx.platforms == ["linux/amd64", "linux/arm64"]
    assert len(set(idx.child_digests)) == 2
    assert idx.manifest()["mediaType"] == OCI_INDEX

    digest = push(idx, store.host, "team/multi", "m1", format=fmt)

    raw = inspect_raw(store.host, "team/multi", "m1")
    assert sha256_digest(raw) == digest
    index = json.loads(raw)
    children = [m["digest"] for m in index["manifests"]]
    platforms = [
        f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"]
    ]
    assert platforms == idx.platforms
    if fmt is None:
        assert digest == idx.digest
        assert children == idx.child_digests
        assert index["mediaType"] == OCI_INDEX
    else:
        assert index["mediaType"] == DOCKER_MANIFEST_LIST
        assert {m["mediaType"] for m in index["manifests"]} == {DOCKER_MANIFEST}
        assert set(children).isdisjoint(idx.child_digests)

    assert_tagged(store, "team/multi", "m1", digest)
    names = store.names()
    for child, img in zip(children, idx.images, strict=True):
        # children: stored and linked as revisions, but neither tagged nor in _layers
        assert_revision(store, "team/multi", child)
        assert not store.exists(repo_rel("team/multi", "_layers", digest_rel(child), "link"))
        child_manifest = json.loads(inspect_raw(store.host, "team/multi", child))
        assert child_manifest["config"]["digest"] == img.config_digest
        for blob in img.blobs:
            assert_layer_link(store, "team/multi", blob.digest)
    tags = {
        n.split("/")[5] for n in names if n.startswith("repositories/team/multi/_manifests/tags/")
    }
    assert tags == {"m1"}

    pulled = tmp_path / "pulled"
    pulled_digest = pull(store.host, "team/multi", "m1", pulled)
    if fmt is None:
        assert pulled_digest == digest
        for child in children:
            assert (pulled / "blobs/sha256" / child.removeprefix("sha256:")).is_file()
    else:  # an OCI layout cannot hold a Docker manifest list: skopeo converts it all,
        # child manifests and configs included; only the layers keep their digests
        assert pulled_digest != digest
        assert len(load_index_json(pulled, pulled_digest)) == 2
    for blob in idx.blobs if fmt is None else [b for i in idx.images for b in i.layers]:
        assert (pulled / "blobs/sha256" / blob.digest.removeprefix("sha256:")).is_file()


def load_index_json(layout: Path, digest: str) -> list[dict[str, Any]]:
    raw = (layout / "blobs/sha256" / digest.removeprefix("sha256:")).read_bytes()
    return json.loads(raw)["manifests"]


@pytest.mark.parametrize(
    ("prefix", "chunksize", "size", "segments"),
    [(None, None, 5000, 1), ("registry/v2store", 1 << 20, (1 << 20) + 5000, 2)],
    ids=["no-prefix", "prefix-2-segments"],
)
def test_swift_objects_are_distribution_dlos(
    make_distribution: Any,
    swift_service: Any,
    tmp_path: Path,
    prefix: str | None,
    chunksize: int | None,
    size: int,
    segments: int,
) -> None:
    """On Swift, uploaded blobs are 0-byte DLO manifests over `[<prefix>/]segments/`;
    links and manifests (PutContent) are plain objects."""
    container = f"dlo-{uuid.uuid4().hex[:10]}"
    reg = make_distribution(swift_storage(swift_service, container, prefix, chunksize=chunksize))
    store = SwiftStore(DistributionSwift(reg, swift_service, container, prefix))
    img = build_image(tmp_path / "oci", "v1", size=size)
    digest = push(img, store.host, "app", "v1")

    objs = {o["name"]: o for o in store.all_objects()}
    top = f"{prefix}/" if prefix else ""
    assert all(n.startswith((top + "files/docker/registry/v2/", top + "segments/")) for n in objs)
    for blob in img.blobs:
        rel = blob_rel(blob.digest)
        headers = store.head(rel)
        manifest = headers.get("x-object-manifest")
        assert manifest, f"{rel} is not a DLO: {headers}"
        assert manifest.startswith(f"{container}/{top}segments/")
        seg_prefix = manifest.split("/", 1)[1]
        segs = sorted(n for n in objs if n.startswith(seg_prefix + "/"))
        want = segments if blob in img.layers else 1
        assert segs == [f"{seg_prefix}/{i:016d}" for i in range(1, want + 1)]
        assert sum(objs[n]["bytes"] for n in segs) == blob.size
        assert objs[store.prefix + rel]["bytes"] == 0  # the listing shows the manifest's 0
        assert int(headers["content-length"]) == blob.size  # a HEAD follows the DLO
        assert sha256_digest(store.read(rel)) == blob.digest
    # the manifest blob and the links went up with PutContent: ordinary objects
    assert "x-object-manifest" not in store.head(blob_rel(digest))
    assert "x-object-manifest" not in store.head(repo_rel("app", "_manifests/tags/v1/current/link"))
    # nothing left of the uploads
    assert not [n for n in objs if "/_uploads/" in n]


def test_retag_keeps_tag_history(distribution_fs: Any, tmp_path: Path) -> None:
    """`tags/<tag>/index/` keeps a link for every manifest the tag has pointed to."""
    store = FSStore(distribution_fs)
    first = build_image(tmp_path / "oci", "a")
    second = build_image(tmp_path / "oci", "b")
    push(first, store.host, "app", "v1")
    push(second, store.host, "app", "v1")
    assert_tagged(store, "app", "v1", second.digest)
    history = sorted(
        n.split("/")[-2]
        for n in store.names()
        if n.startswith("repositories/app/_manifests/tags/v1/index/")
    )
    assert history == sorted(d.removeprefix("sha256:") for d in (first.digest, second.digest))
    assert_revision(store, "app", first.digest)  # the old manifest stays, untagged


def test_distribution_gc_sees_pushed_images(distribution_fs: Any, tmp_path: Path) -> None:
    img = build_image(tmp_path / "oci", "v1")
    push(img, distribution_fs.host, "app", "v1")
    out = distribution_fs.registry.garbage_collect(dry_run=True)
    assert f"app: marking manifest {img.digest}" in out
    assert "0 blobs and 0 manifests eligible for deletion" in out
