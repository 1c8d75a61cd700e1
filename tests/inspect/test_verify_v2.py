"""`verify` on V2 stores that distribution wrote (images pushed with skopeo), each damaged
in one way on a private copy: exactly the damaged images are reported, with the right
object and kind, and everything else is `ok`."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from regtool.errors import NotFound, UsageError
from regtool.inspect.verify import Verification, VerifyResult, verify_registry
from regtool.layout.detect import detect_layout
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest
from tests.inspect.pushed_store import PushedStore, pushed_store
from tests.services import unavailable
from tests.services.distribution import registry_binary, start_distribution, swift_storage
from tests.services.images import build_image, push, tools_missing


@pytest.fixture
def store(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> PushedStore:
    return pushed_store(tmp_path_factory).copy(tmp_path / "store")


def run(store: PushedStore, *targets: str, **options: bool) -> Verification:
    everything = options.pop("everything", not targets)
    return verify_registry(store.layout, "test", targets, everything=everything, **options)


def by_tag(v: Verification) -> dict[str, VerifyResult]:
    return {f"{r.repository}:{r.tag}": r for r in v.results if r.tag is not None}


def damaged(v: Verification) -> dict[str, list[tuple[str, str]]]:
    """Every result with problems -> its (object, kind) pairs."""
    return {
        f"{r.repository}:{r.tag}": [(p.object, p.kind) for p in r.problems]
        for r in v.results
        if r.problems
    }


def flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def layer(store: PushedStore, ref: str, index: int = 0) -> str:
    return store.images[ref].layers[index].digest  # type: ignore[union-attr]


def test_a_clean_store_is_whole(store: PushedStore) -> None:
    v = run(store)
    assert v.ok and v.problems == []
    tags = by_tag(v)
    assert tags.keys() == set(store.digests)
    assert {ref: r.digest for ref, r in tags.items()} == store.digests
    assert {r.status for r in v.results} == {"ok"}
    # every blob once, though team/app and mirror/app share all of theirs
    files = {d: e for d, e in _blob_files(store)}
    assert v.blobs == len(files)
    assert v.bytes_hashed == sum(files.values())
    assert v.images == 6  # app (OCI, Docker), the index and its two children, solo


def _blob_files(store: PushedStore) -> list[tuple[str, int]]:
    base = store.path(store.layout.blobs_dir())
    return [(p.parent.name, p.stat().st_size) for p in base.rglob("data")]


def test_flipped_byte_in_a_layer(store: PushedStore) -> None:
    digest = layer(store, "solo:1")
    flip_byte(store.blob_file(digest))
    v = run(store)
    assert damaged(v) == {"solo:1": [(digest, "digest")]}
    problem = by_tag(v)["solo:1"].problems[0]
    assert by_tag(v)["solo:1"].status == "corrupt"
    assert "content hashes to sha256:" in problem.detail
    assert not v.ok


def test_a_shared_blob_is_hashed_once_and_blamed_everywhere(store: PushedStore) -> None:
    digest = layer(store, "team/app:1.0", 1)
    flip_byte(store.blob_file(digest))
    v = run(store)
    bad = [(digest, "digest")]
    assert damaged(v) == {"team/app:1.0": bad, "team/app:docker": bad, "mirror/app:1.0": bad}
    assert v.bytes_hashed == sum(size for _, size in _blob_files(store))
    assert len(v.problems) == 1


def test_truncated_layer(store: PushedStore) -> None:
    digest = layer(store, "solo:1")
    path = store.blob_file(digest)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-1])
    v = run(store)
    assert damaged(v) == {"solo:1": [(digest, "size")]}
    assert f"has {size - 1} bytes, manifest says {size}" in by_tag(v)["solo:1"].problems[0].detail
    # --quick sees sizes too
    assert damaged(run(store, quick=True)) == {"solo:1": [(digest, "size")]}


def test_quick_does_not_rehash(store: PushedStore) -> None:
    flip_byte(store.blob_file(layer(store, "solo:1")))
    v = run(store, quick=True)
    assert v.ok
    assert v.bytes_hashed < 10_000  # the manifests only


def test_deleted_blob_and_its_dangling_link(store: PushedStore) -> None:
    digest = layer(store, "solo:1")
    store.blob_file(digest).unlink()
    v = run(store)
    assert damaged(v) == {"solo:1": [(digest, "missing")], "solo:None": [(digest, "missing")]}
    assert by_tag(v)["solo:1"].status == "missing"
    # without --all, only the tag is looked at
    assert damaged(run(store, "solo:1")) == {"solo:1": [(digest, "missing")]}


def test_deleted_layers_link(store: PushedStore) -> None:
    digest = layer(store, "solo:1")
    store.path(store.layout.layer_link("solo", Digest.parse(digest))).unlink()
    v = run(store)
    assert damaged(v) == {"solo:1": [(digest, "unlinked")]}
    assert "not linked into solo" in by_tag(v)["solo:1"].problems[0].detail


def test_corrupt_manifest(store: PushedStore) -> None:
    digest = store.digests["solo:1"]
    store.blob_file(digest).write_bytes(b'{"schemaVersion": 2, "broken')
    v = run(store)
    assert damaged(v) == {"solo:1": [(digest, "digest"), (digest, "invalid")]}


def test_tag_pointing_at_a_missing_revision(store: PushedStore) -> None:
    other = store.digests["team/app:1.0"]  # its blob exists, but solo never linked it
    store.path(store.layout.tag_current_link("solo", "1")).write_bytes(other.encode())
    v = run(store)
    unlinked = [(d, "unlinked") for d in [other, *_app_blobs(store)]]
    assert damaged(v) == {"solo:1": unlinked}


def _app_blobs(store: PushedStore) -> list[str]:
    image = store.images["team/app:1.0"]
    return [image.config.digest, *image.layer_digests]  # type: ignore[union-attr]


def test_tag_link_that_is_not_a_digest(store: PushedStore) -> None:
    store.path(store.layout.tag_current_link("solo", "1")).write_bytes(b"garbage\n")
    assert damaged(run(store)) == {"solo:1": [("solo:1", "invalid")]}


def test_index_child_without_revision_link(store: PushedStore) -> None:
    child = store.images["multi:latest"].child_digests[1]  # type: ignore[union-attr]
    store.path(store.layout.revision_link("multi", Digest.parse(child))).unlink()
    v = run(store)
    assert damaged(v) == {"multi:latest": [(child, "unlinked")]}
    assert by_tag(v)["multi:latest"].status == "missing"


def test_index_child_manifest_deleted(store: PushedStore) -> None:
    child = store.images["multi:latest"].child_digests[0]  # type: ignore[union-attr]
    store.blob_file(child).unlink()
    v = run(store)
    assert damaged(v) == {
        "multi:latest": [(child, "missing")],
        "multi:None": [(child, "missing")],  # its revision link now dangles
    }


def test_blob_scan_finds_rot_in_unreferenced_blobs(store: PushedStore) -> None:
    digest = layer(store, "solo:1")
    shutil.rmtree(store.path(store.layout.tag_dir("solo", "1")))  # untagged
    flip_byte(store.blob_file(digest))
    assert run(store).ok  # nothing tagged references it
    v = run(store, blobs=True)
    assert damaged(v) == {"None:None": [(digest, "digest")]}
    assert v.results[-1].digest == digest


def test_targets(store: PushedStore) -> None:
    flip_byte(store.blob_file(layer(store, "solo:1")))
    one = run(store, "team/app:1.0")
    assert [(r.repository, r.tag, r.status) for r in one.results] == [("team/app", "1.0", "ok")]
    repo = run(store, "team/app")
    assert sorted(r.tag for r in repo.results) == ["1.0", "docker"]
    digest = store.digests["solo:1"]
    by_digest = run(store, f"solo@{digest}")
    assert [(r.tag, r.digest, r.status) for r in by_digest.results] == [(None, digest, "corrupt")]
    with pytest.raises(NotFound, match="tag solo:2 not found"):
        run(store, "solo:2")
    with pytest.raises(NotFound, match="repository nosuch not found"):
        run(store, "nosuch")
    with pytest.raises(UsageError):
        run(store, "solo:1", everything=True)
    with pytest.raises(UsageError):
        run(store, everything=False)


def test_many_jobs_or_one_agree(store: PushedStore) -> None:
    arm64 = store.images["multi:latest"].images[1]  # type: ignore[union-attr]
    flip_byte(store.blob_file(arm64.layers[0].digest))
    one = verify_registry(store.layout, "t", everything=True, jobs=1)
    many = verify_registry(store.layout, "t", everything=True, jobs=32)
    assert damaged(one) == damaged(many) != {}
    assert one.bytes_hashed == many.bytes_hashed


def test_distribution_on_swift_with_large_objects(
    swift_service: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Distribution's Swift driver stores a layer over `chunksize` as a DLO (segments
    beside `files/`): it hashes whole, and `--quick` finds its real size."""
    if tools_missing() or registry_binary() is None:
        unavailable("needs distribution, umoci and skopeo")
    container = f"verify-{uuid.uuid4().hex[:8]}"
    tmp = tmp_path_factory.mktemp("swift-dist")
    storage = swift_storage(swift_service, container, chunksize=1 << 20)
    try:
        registry = start_distribution(tmp / "registry", storage)
    except Exception as e:
        unavailable(f"cannot start distribution on Swift: {e}")
    try:
        image = build_image(tmp / "oci", "big", size=1_500_000)
        push(image, registry.host, "big/app", "1")
    finally:
        registry.stop()
    driver = swift_service.driver(container)
    try:
        layout = detect_layout(driver)
        assert isinstance(layout, V2Layout) and layout.swift_naming
        assert any(True for _ in driver.walk("segments")), "expected a DLO"
        for quick in (False, True):
            v = verify_registry(layout, "t", everything=True, blobs=True, quick=quick)
            assert v.ok, v.results
        assert v.bytes_hashed < image.layers[0].size  # quick: the manifest only
        config = Digest.parse(image.config.digest)
        driver.put(layout.blob_data(config), b"{}")
        v = verify_registry(layout, "t", ["big/app:1"])
        assert damaged(v) == {"big/app:1": [(str(config), "size")]}
    finally:
        driver.close()
