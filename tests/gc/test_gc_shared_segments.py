"""On Swift, two large objects can name one segment set: a move that writes the new
manifest before deleting the old one leaves an upload and a blob naming the same set when
it is cut short, and a server-side COPY with `?multipart-manifest=get` makes another. gc
deletes a doomed object's segments only if no object it keeps names them, and otherwise
the manifest alone, and so does the server's upload purging; the sets of kept objects
are cached while their listing entries stay the same (real Swift throughout)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from regtool.facts import open_cache
from regtool.gc import GcOptions, collect
from regtool.gc.model import Doomed, GcResult
from regtool.gc.sweep import _spare_segments
from regtool.layout.manifests import store_identity
from regtool.layout.v2 import SWIFT_ROOT, V2Layout
from regtool.layout.v2_write import write_link, write_started_at
from regtool.oci import Digest
from regtool.server.ops_settings import UploadPurgeSettings
from regtool.server.purge import UploadPurger
from regtool.server.upload_store import UploadStore
from regtool.storage.base import Entry
from regtool.storage.swift.driver import SwiftDriver
from tests.gc.test_gc_swift_large_objects import Heads
from tests.handstore import HandStore

pytestmark = pytest.mark.swift

SEGMENT = 64 * 1024
NOW = timedelta(0)


def options(**kw: Any) -> GcOptions:
    return GcOptions(**{"min_age": NOW, "settle": NOW, **kw})


@pytest.fixture
def store(swift_service: Any) -> Iterator[HandStore]:
    swift = swift_service.driver(f"gc-shared-{uuid.uuid4().hex[:8]}", segment_size=SEGMENT)
    driver = Heads(swift)
    hand = HandStore(driver=driver)
    hand.layout = V2Layout(driver, SWIFT_ROOT)
    try:
        yield hand
    finally:
        driver.delete_many([e.path for e in driver.walk("")])
        driver.close()


def _swift(hand: HandStore) -> SwiftDriver:
    inner = hand.driver.inner  # type: ignore[attr-defined]
    assert isinstance(inner, SwiftDriver)
    return inner


def _large_blob(hand: HandStore, data: bytes) -> Digest:
    """A blob stored as distribution's Swift driver stores one: a DLO."""
    digest = Digest.of(data)
    with hand.driver.writer(hand.layout.blob_data(digest)) as w:
        w.write(data)
        w.commit()
    return digest


def _image_of(hand: HandStore, repo: str, layer: bytes) -> Digest:
    """An image in `repo` whose one layer is `layer`, stored as a large object."""
    digest = _large_blob(hand, layer)
    write_link(hand.layout, hand.layout.layer_link(repo, digest), digest)
    hand.image_of(repo, "1", digest, len(layer))
    return digest


def _set_of(hand: HandStore, path: str) -> str:
    found = hand.driver.segment_set(path)
    assert found is not None
    return found


def _name_set(hand: HandStore, path: str, segment_set: str) -> None:
    """Make the object at `path` a DLO manifest naming `segment_set`, as a COPY with
    `?multipart-manifest=get` (or a move cut short) leaves one."""
    _swift(hand).dlo.put_manifest(path, segment_set)


def _segments(hand: HandStore, segment_set: str) -> list[str]:
    return [e.path for e in hand.driver.walk(segment_set)]


def _item(result: GcResult, name: str) -> Doomed:
    return next(i for i in result.items if i.name == name)


@pytest.mark.parametrize("orphan_segments", [False, True])
def test_a_doomed_blob_naming_a_kept_blobs_segments_goes_without_them(
    store: HandStore, orphan_segments: bool
) -> None:
    layer = os.urandom(3 * SEGMENT + 5)
    kept = _image_of(store, "app", layer)
    shared = _set_of(store, store.layout.blob_data(kept))
    segments = _segments(store, shared)
    foreign = Digest.of(b"a copy of the manifest alone")
    _name_set(store, store.layout.blob_data(foreign), shared)

    plan = collect(store.layout, "t", options(dry_run=True, orphan_segments=orphan_segments))
    item = _item(plan, str(foreign))
    assert item.paths == (store.layout.blob_data(foreign),) and item.size == 0
    assert "segments stay" in item.reason
    assert (
        f"blob {foreign}: its segments stay, {store.layout.blob_data(kept)} reads them too"
        in plan.warnings
    )
    assert not [i for i in plan.items if i.kind == "segments"]

    result = collect(store.layout, "t", options(orphan_segments=orphan_segments))
    assert result.ok
    assert not store.driver.exists(store.layout.blob_data(foreign))
    assert _segments(store, shared) == segments
    assert store.driver.get(store.layout.blob_data(kept)) == layer


def test_an_old_upload_naming_a_kept_blobs_segments_goes_without_them(
    store: HandStore,
) -> None:
    """What a commit cut short between its two writes leaves: the upload's data and the
    blob it became name one set. Purging the upload must leave the blob whole."""
    layer = os.urandom(2 * SEGMENT)
    kept = _image_of(store, "app", layer)
    shared = _set_of(store, store.layout.blob_data(kept))
    upload = str(uuid.uuid4())
    write_started_at(store.layout, "app", upload)
    _name_set(store, store.layout.upload_data("app", upload), shared)

    result = collect(store.layout, "t", options(uploads_older_than=NOW))
    assert result.ok, result.failed
    assert _item(result, upload).kind == "upload"
    assert not list(store.driver.walk(store.layout.upload_dir("app", upload)))
    assert store.driver.get(store.layout.blob_data(kept)) == layer


def test_a_doomed_blob_whose_segments_an_upload_in_progress_names_goes_without_them(
    store: HandStore,
) -> None:
    layer = os.urandom(2 * SEGMENT + 1)
    doomed = _large_blob(store, layer)
    shared = _set_of(store, store.layout.blob_data(doomed))
    upload = str(uuid.uuid4())
    write_started_at(store.layout, "app", upload)
    data = store.layout.upload_data("app", upload)
    _name_set(store, data, shared)

    result = collect(store.layout, "t", options(uploads_older_than=timedelta(hours=1)))
    assert result.ok
    assert _item(result, str(doomed)).paths == (store.layout.blob_data(doomed),)
    assert not store.driver.exists(store.layout.blob_data(doomed))
    assert store.driver.get(data) == layer


def test_kept_objects_sets_are_cached_while_their_listing_is_unchanged(
    store: HandStore,
) -> None:
    kept = _image_of(store, "app", os.urandom(SEGMENT + 1))
    doomed = _large_blob(store, os.urandom(2 * SEGMENT))
    kept_path, doomed_path = store.layout.blob_data(kept), store.layout.blob_data(doomed)
    doomed_set = _set_of(store, doomed_path)
    driver = store.driver
    assert isinstance(driver, Heads)
    dry = options(dry_run=True)

    def run() -> GcResult:
        driver.manifests.clear()
        with open_cache(store_identity(store.layout)) as facts:
            return collect(store.layout, "t", dry, facts=facts)

    first = run()
    assert sorted(driver.manifests) == sorted([kept_path, doomed_path])
    assert len(_item(first, str(doomed)).paths) == 3  # the manifest and its 2 segments
    assert run().items.counts == first.items.counts and driver.manifests == []

    # The kept blob rewritten to name the doomed one's set: its listing changed, so it
    # is asked again, and the doomed blob's segments stay.
    _name_set(store, kept_path, doomed_set)
    third = run()
    assert driver.manifests == [kept_path]
    assert _item(third, str(doomed)).paths == (doomed_path,)

    with open_cache(store_identity(store.layout), enabled=False) as off:
        driver.manifests.clear()
        uncached = collect(store.layout, "t", dry, facts=off)
    assert sorted(driver.manifests) == sorted([kept_path, doomed_path])
    assert [(i.kind, i.name, i.paths) for i in uncached.items] == [
        (i.kind, i.name, i.paths) for i in third.items
    ]


def test_a_kept_objects_set_is_taken_out_of_the_plan_when_the_recheck_keeps_it(
    store: HandStore,
) -> None:
    """Two doomed objects name one set, and a push during gc brings one back (the
    re-check keeps it): the other goes without the set."""
    layout = store.layout
    segments = ("segments/abc/def0/0000000000000001", "segments/abc/def0/0000000000000002")
    blob = Doomed("blob", str(Digest.of(b"b")), ("blobs/b/data", *segments), 10, "unref")
    upload = Doomed("upload", "u1", ("u1/startedat", "u1/data", *segments), 10, "old", "app")
    result = GcResult("t", "v2", options())
    result.items.extend([upload])
    _spare_segments(layout, result, [blob])
    (left,) = list(result.items)
    assert left.paths == ("u1/startedat", "u1/data")
    assert "kept after all" in left.reason
    assert result.keep_segments == {layout.upload_data("app", "u1")}


def test_a_large_object_moves_by_deleting_its_old_manifest_first(store: HandStore) -> None:
    """A move cut short between its two writes leaves no object naming the segments
    (garbage for --orphan-segments), never two: deleting one of two would take the
    other's segments."""
    swift = _swift(store)
    data = os.urandom(SEGMENT + 3)
    src, dst = "_uploads/x/data", "blobs/x/data"
    with swift.writer(src) as w:
        w.write(data)
        w.commit()
    segment_set = _set_of(store, src)

    def cut(path: str, manifest: str) -> None:
        raise OSError("connection reset")

    original = swift.dlo.link
    swift.dlo.link = cut  # type: ignore[method-assign]
    try:
        with pytest.raises(OSError):
            swift.move(src, dst)
    finally:
        swift.dlo.link = original  # type: ignore[method-assign]
    assert not swift.exists(src) and not swift.exists(dst)
    assert len(_segments(store, segment_set)) == 2

    with swift.writer(src) as w:
        w.write(data)
        w.commit()
    swift.move(src, dst)
    assert not swift.exists(src) and swift.get(dst) == data
    assert [p for p in (src, dst) if swift.exists(p)] == [dst]


class HeadsFirst(Heads):
    """A real driver whose walk of `repositories/` goes on only once a large object's set
    is being asked for: gc that asked only after the mark would wait here in vain."""

    def __init__(self, inner: Any):
        super().__init__(inner)
        self.asked = threading.Event()
        self.beside: bool | None = None

    def segment_set(self, path: str) -> str | None:
        self.asked.set()
        return super().segment_set(path)

    def walk(self, prefix: str = "", **kw: Any) -> Iterator[Entry]:
        if prefix.endswith("/repositories"):
            self.beside = self.asked.wait(10)
        yield from super().walk(prefix, **kw)


def test_large_objects_sets_are_found_beside_the_walk_of_repositories(
    swift_service: Any,
) -> None:
    swift = swift_service.driver(f"gc-early-{uuid.uuid4().hex[:8]}", segment_size=SEGMENT)
    driver = HeadsFirst(swift)
    hand = HandStore(driver=driver)
    hand.layout = V2Layout(driver, SWIFT_ROOT)
    try:
        kept = _image_of(hand, "app", os.urandom(SEGMENT + 1))
        doomed = _large_blob(hand, os.urandom(SEGMENT + 2))
        with open_cache(store_identity(hand.layout)) as facts:
            result = collect(hand.layout, "t", options(dry_run=True), facts=facts)
        assert driver.beside is True
        assert len(_item(result, str(doomed)).paths) == 3
        paths = [hand.layout.blob_data(d) for d in (kept, doomed)]
        assert sorted(driver.manifests) == sorted(paths)  # each asked once
    finally:
        driver.delete_many([e.path for e in driver.walk("")])
        driver.close()


@pytest.mark.parametrize("orphan_segments", [False, True])
def test_a_kept_blob_naming_its_segments_by_a_shorter_prefix_keeps_them(
    store: HandStore, orphan_segments: bool
) -> None:
    """`X-Object-Manifest` names a prefix: Swift reads every object whose name begins
    with it. A kept blob whose manifest names its set cut short reads the same segments,
    which a doomed object naming the whole set must not take."""
    layer = os.urandom(2 * SEGMENT + 7)
    kept = _image_of(store, "app", layer)
    kept_path = store.layout.blob_data(kept)
    whole = _set_of(store, kept_path)
    _name_set(store, kept_path, whole[:-4])
    assert store.driver.get(kept_path) == layer
    doomed = Digest.of(b"names the whole set")
    _name_set(store, store.layout.blob_data(doomed), whole)

    result = collect(store.layout, "t", options(orphan_segments=orphan_segments))
    assert result.ok
    item = _item(result, str(doomed))
    assert item.paths == (store.layout.blob_data(doomed),)
    assert any(kept_path in w and str(doomed) in w for w in result.warnings)
    assert not [i for i in result.items if i.kind == "segments"]
    assert store.driver.get(kept_path) == layer


def test_a_doomed_blob_naming_a_prefix_of_others_segments_goes_alone_and_frees_nothing(
    store: HandStore,
) -> None:
    layer = os.urandom(2 * SEGMENT)
    kept = _image_of(store, "app", layer)
    whole = _set_of(store, store.layout.blob_data(kept))
    doomed = Digest.of(b"names a prefix")
    _name_set(store, store.layout.blob_data(doomed), whole[:-4])

    for orphan_segments in (False, True):
        plan = collect(store.layout, "t", options(dry_run=True, orphan_segments=orphan_segments))
        item = _item(plan, str(doomed))
        assert item.paths == (store.layout.blob_data(doomed),) and item.size == 0
        assert plan.bytes_freed == 0
    result = collect(store.layout, "t", options(orphan_segments=True))
    assert result.ok and store.driver.get(store.layout.blob_data(kept)) == layer


def test_the_servers_upload_purging_leaves_segments_a_kept_blob_reads(
    store: HandStore,
) -> None:
    """The server's purging meets the same leftover: the upload goes, the blob's
    segments stay; an old upload of segments of its own goes with them."""
    layer = os.urandom(2 * SEGMENT)
    kept = _image_of(store, "app", layer)
    shared = _set_of(store, store.layout.blob_data(kept))
    leftover, abandoned = str(uuid.uuid4()), str(uuid.uuid4())
    for upload in (leftover, abandoned):
        write_started_at(store.layout, "app", upload)
    _name_set(store, store.layout.upload_data("app", leftover), shared)
    with store.driver.writer(store.layout.upload_data("app", abandoned)) as w:
        w.write(os.urandom(SEGMENT + 1))
        w.commit()
    own = _set_of(store, store.layout.upload_data("app", abandoned))

    identity = store_identity(store.layout)
    facts = open_cache(identity)  # the server's, open while it runs
    purger = UploadPurger(UploadStore(store.layout), UploadPurgeSettings(age=0), facts=facts)
    run = purger.run_once(now=datetime.now(UTC) + timedelta(seconds=1))
    assert sorted(run.deleted) == sorted([("app", leftover), ("app", abandoned)])
    assert store.driver.get(store.layout.blob_data(kept)) == layer
    assert _segments(store, own) == []
    # what the run learnt is written at once: a restart (another process) has it
    kept_entry = store.driver.stat(store.layout.blob_data(kept))
    listed = next(
        e for e in store.driver.walk(store.layout.blobs_dir()) if e.path == kept_entry.path
    )
    with open_cache(identity) as again:
        assert again.segment_sets([listed]) == {listed.path: shared}
    facts.close()


def test_a_set_two_doomed_objects_name_is_counted_once(store: HandStore) -> None:
    """A distribution commit cut short whose blob nobody references: the old upload and
    the blob both go, with the one set they name, whose bytes count once."""
    layer = os.urandom(2 * SEGMENT + 3)
    blob = _large_blob(store, layer)
    shared = _set_of(store, store.layout.blob_data(blob))
    upload = str(uuid.uuid4())
    write_started_at(store.layout, "app", upload)
    _name_set(store, store.layout.upload_data("app", upload), shared)

    dry = collect(store.layout, "t", options(dry_run=True, uploads_older_than=NOW))
    assert dry.bytes("blob") + dry.bytes("upload") == len(layer) + len(
        store.driver.get(store.layout.upload_started_at("app", upload))
    )
    segments = _segments(store, shared)
    assert all(set(segments) <= set(i.paths) for i in dry.items if i.kind in ("blob", "upload"))
    result = collect(store.layout, "t", options(uploads_older_than=NOW))
    assert result.ok and _segments(store, shared) == []


def test_the_servers_upload_purging_leaves_segments_an_upload_that_stays_reads(
    store: HandStore,
) -> None:
    layout = store.layout
    young, old = str(uuid.uuid4()), str(uuid.uuid4())
    write_started_at(layout, "app", young)
    data = os.urandom(SEGMENT + 5)
    with store.driver.writer(layout.upload_data("app", young)) as w:
        w.write(data)
        w.commit()
    write_started_at(layout, "app", old)
    _name_set(
        store, layout.upload_data("app", old), _set_of(store, layout.upload_data("app", young))
    )
    write_started_at(layout, "app", young)  # touched again after the old one's last write

    def last(upload: str) -> datetime:
        times = [e.modified for e in store.driver.walk(layout.upload_dir("app", upload))]
        assert all(t is not None for t in times)
        return max(t for t in times if t is not None)

    # `age` parts the two uploads' last writes, whatever the clock says
    now = datetime.now(UTC) + timedelta(seconds=1)
    limit = last(old) + (last(young) - last(old)) / 2
    purger = UploadPurger(
        UploadStore(layout), UploadPurgeSettings(age=(now - limit).total_seconds())
    )
    run = purger.run_once(now=now)
    assert run.deleted == [("app", old)]
    assert store.driver.get(layout.upload_data("app", young)) == data


@pytest.mark.parametrize("prefix", ["abc//def", "abc/../def"])
def test_a_manifest_naming_an_invalid_prefix_does_not_stop_gc(
    store: HandStore, prefix: str
) -> None:
    layer = os.urandom(SEGMENT + 9)
    kept = _image_of(store, "app", layer)
    doomed = Digest.of(b"an invalid prefix")
    swift = _swift(store)  # as Swift takes it: no path of regtool's
    swift.dlo.link(store.layout.blob_data(doomed), f"{swift.objects.container}/segments/{prefix}")
    for orphan_segments in (False, True):
        result = collect(store.layout, "t", options(orphan_segments=orphan_segments))
        assert result.ok
    assert not store.driver.exists(store.layout.blob_data(doomed))
    assert store.driver.get(store.layout.blob_data(kept)) == layer


def test_a_store_under_a_prefix_is_not_taken_from_the_container_root(
    swift_service: Any, cli: Any
) -> None:
    """distribution's `prefix` puts a store (and its segments) one level down in a
    container that may hold others beside it: `swift://c` is refused, naming the path to
    give, and gc at that path keeps the store's segments, `--orphan-segments` too."""
    container = f"gc-prefixed-{uuid.uuid4().hex[:8]}"
    driver = swift_service.driver(container, prefix="pre", segment_size=SEGMENT)
    hand = HandStore(driver=driver)
    hand.layout = V2Layout(driver, SWIFT_ROOT)
    try:
        _image_of(hand, "app", os.urandom(3 * SEGMENT))
        segments = [e.path for e in driver.walk("segments")]
        assert segments
        env = {
            "ST_AUTH": swift_service.auth_url,
            "ST_USER": swift_service.user,
            "ST_KEY": swift_service.key,
        }
        flags = ["--orphan-segments", "--min-age", "0s"]
        at_root = cli("gc", *flags, "-l", f"swift://{container}", env=env)
        assert at_root.exit_code == 2, at_root.stdout
        assert f"under pre/: give that path in the LOCATION (swift://{container}/pre)" in (
            at_root.stderr
        )
        at_prefix = cli("gc", *flags, "-l", f"swift://{container}/pre", env=env)
        assert at_prefix.exit_code == 0, at_prefix.stderr
        assert [e.path for e in driver.walk("segments")] == segments
        verified = cli("verify", "--all", "-l", f"swift://{container}/pre", env=env)
        assert verified.exit_code == 0, verified.stdout
    finally:
        driver.delete_many([e.path for e in driver.walk("")])
        driver.close()
