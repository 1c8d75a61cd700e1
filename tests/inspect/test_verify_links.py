"""A repository's link counts only if it names its blob: distribution answers 500 for a
blob behind an empty `_layers` link, and serves another blob behind one naming another
digest. verify reports such a link (kind `link`, naming it and what it holds); a Swift
listing's MD5 tells right links without reading them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from regtool.inspect.listing import list_registry
from regtool.inspect.verify import Verification, verify_registry
from regtool.oci import Digest
from regtool.storage.base import Driver
from regtool.storage.retry import RetryingDriver
from tests.handstore import HandStore
from tests.inspect.pushed_store import PushedStore, pushed_store


@pytest.fixture
def store(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> PushedStore:
    return pushed_store(tmp_path_factory).copy(tmp_path / "store")


def found(v: Verification) -> dict[str, list[tuple[str, str]]]:
    return {
        f"{r.repository}:{r.tag}": [(p.object, p.kind) for p in r.problems]
        for r in v.results
        if r.problems
    }


def solo_layer(store: PushedStore) -> Digest:
    return Digest.parse(store.images["solo:1"].layers[0].digest)  # type: ignore[union-attr]


def test_an_empty_layers_link(store: PushedStore) -> None:
    digest = solo_layer(store)
    store.path(store.layout.layer_link("solo", digest)).write_bytes(b"")
    v = verify_registry(store.layout, "t", ["solo:1"])
    assert found(v) == {"solo:1": [(str(digest), "link")]}
    (problem,) = v.results[0].problems
    assert problem.detail == (
        f"the _layers link of {str(digest)[:19]}… in solo holds nothing (0 bytes)"
    )
    assert v.results[0].status == "corrupt" and not v.ok
    # --all reports it in the tag's row and the repository's, as one problem
    everything = verify_registry(store.layout, "t", everything=True)
    assert found(everything) == {
        "solo:1": [(str(digest), "link")],
        "solo:None": [(str(digest), "link")],
    }
    assert len(everything.problems) == 1


def test_a_link_of_the_right_length_naming_another_blob(store: PushedStore) -> None:
    digest = solo_layer(store)
    other = store.digests["multi:latest"]
    store.path(store.layout.layer_link("solo", digest)).write_bytes(other.encode())
    v = verify_registry(store.layout, "t", ["solo:1"])
    assert found(v) == {"solo:1": [(str(digest), "link")]}
    assert f"holds {other[:19]}…, another blob" in v.results[0].problems[0].detail


def test_a_truncated_revision_link(store: PushedStore) -> None:
    manifest = store.digests["solo:1"]
    link = store.path(store.layout.revision_link("solo", Digest.parse(manifest)))
    link.write_bytes(link.read_bytes()[:-1])
    v = verify_registry(store.layout, "t", ["solo:1"])
    assert found(v) == {"solo:1": [(manifest, "link")]}
    assert "the revision link of" in v.results[0].problems[0].detail
    assert "70 bytes that are not a digest" in v.results[0].problems[0].detail


def test_a_bad_link_no_image_uses_is_found_by_all(tmp_path: Path) -> None:
    store = HandStore(tmp_path)
    store.image("app", "1")
    stray = store.blob("app", b"a blob no manifest references")
    store.path(store.layout.layer_link("app", stray)).write_bytes(b"\n")
    assert verify_registry(store.layout, "t", ["app:1"]).ok
    v = verify_registry(store.layout, "t", everything=True)
    assert found(v) == {"app:None": [(str(stray), "link")]}


def test_a_right_link_stays_right(tmp_path: Path) -> None:
    store = HandStore(tmp_path)
    image = store.image("app", "1", layers=3)
    v = verify_registry(store.layout, "t", everything=True)
    assert v.ok and [r.status for r in v.results] == ["ok"]
    assert v.blobs == len(image.blobs) + 1  # and the manifest


class Recording(RetryingDriver):
    """A real driver, recording the paths read whole."""

    def __init__(self, inner: Driver):
        super().__init__(inner)
        self.read: list[str] = []

    def get(self, path: str) -> bytes:
        self.read.append(path)
        return super().get(path)

    def get_many(self, paths: Iterable[str], jobs: int = 16) -> dict[str, bytes | Exception]:
        paths = list(paths)
        self.read += paths
        return super().get_many(paths, jobs)


@pytest.mark.swift
def test_a_swift_listing_tells_links_without_reading_them(swift_service: Any) -> None:
    recording = Recording(swift_service.driver(f"links-{uuid.uuid4().hex[:8]}"))
    try:
        store = HandStore(driver=recording)
        one = store.image("app", "1", layers=2)
        two = store.image("app", "1", layers=1)  # re-points the tag: history of two
        empty, other = one.layers
        recording.put(store.layout.layer_link("app", empty), b"")
        recording.put(store.layout.layer_link("app", other), str(one.config).encode())
        recording.read.clear()

        listing = list_registry(store.layout, "t")
        assert [(t.tag, t.digest) for t in listing.repositories[0].tags] == [("1", str(two.digest))]
        v = verify_registry(store.layout, "t", everything=True)
        assert {k: set(p) for k, p in found(v).items()} == {
            "app:None": {(str(empty), "link"), (str(other), "link")}
        }
        links = {p for p in recording.read if p.endswith("/link")}
        bad = {store.layout.layer_link("app", d) for d in (empty, other)}
        assert links == bad  # read only to tell what a wrong one holds
    finally:
        for entry in list(recording.walk("")):
            recording.delete(entry.path)
        recording.close()


def test_a_tag_link_in_capitals_is_listed_but_invalid(tmp_path: Path) -> None:
    """`SHA256:...` has a digest's length: ls, which infers a never re-pointed tag's digest
    from the listing on local storage, shows it as its history's digest (documented);
    verify reads the link and reports it invalid (distribution cannot parse it)."""
    store = HandStore(tmp_path)
    image = store.image("app", "1")
    link = store.path(store.layout.tag_current_link("app", "1"))
    link.write_bytes(link.read_bytes().upper())
    listing = list_registry(store.layout, "t", None)
    (repo,) = listing.repositories
    assert [t.digest for t in repo.tags] == [str(image.digest)] and listing.warnings == []
    v = verify_registry(store.layout, "t", ["app:1"])
    assert [(p.object, p.kind) for p in v.results[0].problems] == [("app:1", "invalid")]
