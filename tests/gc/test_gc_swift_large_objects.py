"""On Swift, gc walks `segments/` beside `repositories/` (a walk begun ahead is stopped
when gc fails), and sizes the large objects it would delete from that walk and a HEAD
of each object's manifest alone (which Swift answers without listing the segments); a
full HEAD only for an object whose segments that walk did not show. The plan is the
same: each blob with its segments and its size."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from regtool.errors import StorageError
from regtool.facts import open_cache
from regtool.gc import GcOptions, collect
from regtool.layout.manifests import store_identity
from regtool.layout.v2 import SWIFT_ROOT, V2Layout
from regtool.layout.v2_write import write_link
from regtool.oci import Digest
from regtool.storage.base import Driver, Entry, LargeObject
from regtool.storage.retry import RetryingDriver
from tests.handstore import HandStore

pytestmark = pytest.mark.swift

SEGMENT = 64 * 1024
DRY = GcOptions(dry_run=True, min_age=timedelta(0), settle=timedelta(0))


class Heads(RetryingDriver):
    """A real driver that records which HEADs gc asks for."""

    def __init__(self, inner: Driver):
        super().__init__(inner)
        self.whole: list[str] = []  # large_object: Swift lists the segments
        self.manifests: list[str] = []  # segment_set: the manifest object alone

    def large_object(self, path: str) -> LargeObject | None:
        self.whole.append(path)
        return super().large_object(path)

    def segment_set(self, path: str) -> str | None:
        self.manifests.append(path)
        return super().segment_set(path)


@pytest.fixture
def store(swift_service: Any) -> Iterator[HandStore]:
    driver = Heads(swift_service.driver(f"gc-lo-{uuid.uuid4().hex[:8]}", segment_size=SEGMENT))
    hand = HandStore(driver=driver)
    hand.layout = V2Layout(driver, SWIFT_ROOT)
    try:
        yield hand
    finally:
        driver.delete_many([e.path for e in driver.walk("")])
        driver.close()


def _large_blob(hand: HandStore, repo: str, data: bytes) -> Digest:
    """A blob written as distribution's Swift driver writes one: a DLO."""
    digest = Digest.of(data)
    with hand.driver.writer(hand.layout.blob_data(digest)) as w:
        w.write(data)
        w.commit()
    write_link(hand.layout, hand.layout.layer_link(repo, digest), digest)
    return digest


@pytest.mark.parametrize("cached", [False, True])
def test_large_objects_are_sized_by_the_walk_of_their_segments(
    store: HandStore, cached: bool
) -> None:
    store.image("app", "1")
    data = {n: os.urandom(n) for n in (3 * SEGMENT + 5, SEGMENT)}
    orphans = {_large_blob(store, "app", d): d for d in data.values()}
    empty = _large_blob(store, "app", b"")  # a DLO of no segments: none walked
    driver = store.driver
    assert isinstance(driver, Heads)
    with open_cache(store_identity(store.layout), enabled=cached) as facts:
        result = collect(store.layout, "t", DRY, facts=facts)
    blobs = {i.name: i for i in result.items if i.kind == "blob"}
    assert set(blobs) == {*map(str, orphans), str(empty)}
    for digest, content in orphans.items():
        item = blobs[str(digest)]
        assert item.size == len(content)
        segments = item.paths[1:]
        assert len(segments) == -(-len(content) // SEGMENT)
        assert all(p.startswith("segments/") for p in segments)
    assert blobs[str(empty)].size == 0 and blobs[str(empty)].paths[1:] == ()
    # each DLO's manifest HEADed once; a whole HEAD only for the one no walk sized
    paths = [store.layout.blob_data(d) for d in (*orphans, empty)]
    assert sorted(driver.manifests) == sorted(paths)
    assert driver.whole == [store.layout.blob_data(empty)]


class Ordered(RetryingDriver):
    """A real driver whose walk of `repositories/` goes on only once `segments/` is being
    walked too: gc that walked them one after the other would wait here in vain."""

    def __init__(self, inner: Driver):
        super().__init__(inner)
        self.segments_begun = threading.Event()
        self.beside: bool | None = None
        self.fail_repositories = False

    def walk(self, prefix: str = "", *, temporaries: bool = False) -> Iterator[Entry]:
        # as the walk is iterated, not when it is made
        if prefix == "segments":
            self.segments_begun.set()
        elif prefix.endswith("/repositories"):
            self.beside = self.segments_begun.wait(30)
            if self.fail_repositories:
                raise StorageError("listing refused", path=prefix)
        yield from super().walk(prefix, temporaries=temporaries)


@pytest.mark.parametrize("fails", [False, True])
def test_segments_are_walked_beside_repositories(swift_service: Any, fails: bool) -> None:
    driver = Ordered(swift_service.driver(f"gc-ahead-{uuid.uuid4().hex[:8]}", segment_size=SEGMENT))
    hand = HandStore(driver=driver)
    hand.layout = V2Layout(driver, SWIFT_ROOT)
    try:
        hand.image("app", "1")
        orphan = _large_blob(hand, "app", os.urandom(2 * SEGMENT))
        driver.fail_repositories = fails
        if fails:  # the walk begun beside it is stopped: no thread outlives gc
            with pytest.raises(StorageError, match="listing refused"):
                collect(hand.layout, "t", DRY)
            assert [t.name for t in threading.enumerate() if t.name.startswith("gc-")] == []
        else:
            result = collect(hand.layout, "t", DRY)
            assert [i.name for i in result.items if i.kind == "blob"] == [str(orphan)]
        assert driver.beside is True
    finally:
        driver.fail_repositories = False
        driver.delete_many([e.path for e in driver.walk("")])
        driver.close()
