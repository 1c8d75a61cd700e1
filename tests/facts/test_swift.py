"""On Swift: tag links told by the listing's MD5 (zero GETs, also for tags re-pushed three
times), a link no candidate matches read with one GET and still listed right, and a warm
manifest cache that leaves `ls` and `gc --dry-run` with listings only."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import pytest

from regtool.facts import open_cache
from regtool.gc import GcOptions, collect
from regtool.inspect.listing import list_registry
from regtool.layout.manifests import store_identity
from tests.facts.recording import Recording
from tests.handstore import HandStore

pytestmark = pytest.mark.swift

DRY = GcOptions(dry_run=True, min_age=timedelta(0), settle=timedelta(0))


@pytest.fixture
def store(swift_service: Any) -> Iterator[tuple[HandStore, Recording]]:
    recording = Recording(swift_service.driver(f"facts-{uuid.uuid4().hex[:8]}"))
    try:
        yield HandStore(driver=recording), recording
    finally:
        recording.delete_many([e.path for e in recording.walk("")])
        recording.close()


def repushed(store: HandStore) -> dict[tuple[str, str], str]:
    """Two repositories, each tag pushed three times (a history of three)."""
    current = {}
    for repo in ("app",):
        for tag in ("1", "latest"):
            for _ in range(3):
                current[(repo, tag)] = str(store.image(repo, tag).digest)
    return current


def tags_of(listing: Any) -> dict[tuple[str, str], str | None]:
    return {(r.name, t.tag): t.digest for r in listing.repositories for t in r.tags}


def test_tag_links_of_repushed_tags_need_no_get(store: tuple[HandStore, Recording]) -> None:
    hand, recording = store
    current = repushed(hand)
    recording.read.clear()
    listing = list_registry(hand.layout, "t")
    assert tags_of(listing) == current and listing.warnings == []
    assert [p for p in recording.read if p.endswith("/link")] == []
    assert listing.tag_links_read == 0


def test_a_link_no_candidate_matches_is_read_and_listed_right(
    store: tuple[HandStore, Recording], caplog: pytest.LogCaptureFixture
) -> None:
    hand, recording = store
    current = repushed(hand)
    link = hand.layout.tag_current_link("app", "1")
    recording.put(link, current[("app", "1")].encode() + b"\n")  # foreign: a newline
    recording.read.clear()
    with caplog.at_level(logging.DEBUG, logger="regtool.inspect.listing"):
        listing = list_registry(hand.layout, "t")
    # the newline is no digest: reported as the damage it is, the others listed
    assert [p for p in recording.read if p.endswith("/link")] == [link]
    assert listing.tag_links_read == 1
    assert any("app:1" in r.getMessage() and "MD5" in r.getMessage() for r in caplog.records)
    got = tags_of(listing)
    assert {k: v for k, v in got.items() if k != ("app", "1")} == {
        k: v for k, v in current.items() if k != ("app", "1")
    }
    # a revision no tag history names, linked by hand: matched among the revisions
    other = hand.image("app", "other")
    recording.put(link, str(other.digest).encode())
    recording.read.clear()
    listing = list_registry(hand.layout, "t")
    assert tags_of(listing)[("app", "1")] == str(other.digest)
    assert [p for p in recording.read if p.endswith("/link")] == []


def test_a_warm_cache_leaves_listings_only(store: tuple[HandStore, Recording]) -> None:
    hand, recording = store
    repushed(hand)
    identity = store_identity(hand.layout)
    with open_cache(identity, enabled=False) as facts:
        cold = asdict(list_registry(hand.layout, "t", facts=facts))
        cold_gc = collect(hand.layout, "t", DRY, facts=facts)
    with open_cache(identity) as facts:
        assert asdict(list_registry(hand.layout, "t", facts=facts)) == cold
    recording.read.clear()
    recording.stats.clear()
    before = recording.request_count()
    with open_cache(identity) as facts:
        assert asdict(list_registry(hand.layout, "t", facts=facts)) == cold
        assert facts.misses == 0 and facts.hits == 2
    assert recording.read == []
    assert before is not None
    assert recording.stats == []
    assert recording.request_count() == before + 2  # repositories/ and blobs/, a page each
    with open_cache(identity) as facts:  # gc reads untagged revisions too: kept now
        collect(hand.layout, "t", DRY, facts=facts)
    recording.read.clear()
    with open_cache(identity) as facts:
        warm_gc = collect(hand.layout, "t", DRY, facts=facts)
    assert recording.read == [] and recording.stats == []
    assert warm_gc.items == cold_gc.items and warm_gc.warnings == cold_gc.warnings


def test_a_replaced_manifest_object_is_read_again(store: tuple[HandStore, Recording]) -> None:
    hand, recording = store
    image = hand.image("app", "1")
    identity = store_identity(hand.layout)
    with open_cache(identity) as facts:
        list_registry(hand.layout, "t", facts=facts)
    path = hand.layout.blob_data(image.digest)
    recording.put(path, b"{}" + b" " * (len(recording.get(path)) - 2))  # same size
    recording.read.clear()
    with open_cache(identity) as facts:
        listing = list_registry(hand.layout, "t", facts=facts)
    assert recording.read == [path]
    assert any(str(image.digest) in w for w in listing.warnings)
