"""What the UI's pages are made of, without a browser or a server: `StoreView` over a
local store whose driver counts what it reads."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from regtool.errors import StorageError
from regtool.layout import v2_write
from regtool.layout.detect import default_layout
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest
from regtool.storage.base import Entry, Prune
from regtool.storage.local import LocalDriver
from regtool.ui import sharing
from regtool.ui.data import PAGE_SIZE, ImageDetails, StoreView
from regtool.ui.sharing import SHOWN
from tests.v2store import write_image

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


class CountingDriver(LocalDriver):
    """A local driver that remembers every file it reads (`get`, `open`) and every walk."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.lock = threading.Lock()
        self.read: list[str] = []
        self.walked: list[str] = []

    def get(self, path: str) -> bytes:
        with self.lock:
            self.read.append(path)
        return super().get(path)

    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        with self.lock:
            self.read.append(path)
        return super().open(path, offset, length)

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        with self.lock:
            self.walked.append(prefix)
        return super().walk(prefix, temporaries=temporaries, prune=prune)


def view_of(root: Path) -> tuple[StoreView, CountingDriver, V2Layout]:
    driver = CountingDriver(root)
    layout = default_layout(driver)
    return StoreView(layout, str(root)), driver, layout


def test_a_second_start_reads_no_manifest_it_has_shown_before(tmp_path: Path) -> None:
    layout = default_layout(LocalDriver(tmp_path))
    images = {n: write_image(layout, n, "1", layer=n.encode()) for n in ("a/one", "b/two")}
    manifests = {layout.blob_data(i.manifest) for i in images.values()}

    def browse(view: StoreView) -> None:
        view.catalog(lambda _: True)
        view.repository("a/one")
        details = view.image("a/one", "1")
        assert details.reference == str(images["a/one"].manifest)
        assert details.platform == "linux/amd64"  # its config was read

    first, driver, _ = view_of(tmp_path)
    browse(first)
    first.wait_for_walk()  # and the index made after it
    assert manifests <= set(driver.read)  # read once, and kept in the facts file

    again, driver, _ = view_of(tmp_path)  # a new process would start the same way
    browse(again)
    again.wait_for_walk()
    assert not manifests & set(driver.read), driver.read
    assert again.facts is not None and again.facts.hits >= 2


def write_index(layout: V2Layout, name: str, tag: str, children: dict[str, Digest]) -> Digest:
    """An OCI index of `children` ("os/arch" -> a manifest of `name`), tagged `tag`."""
    manifests = [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": str(digest),
            "size": len(layout.read_blob(digest)),
            "platform": dict(zip(("os", "architecture"), platform.split("/"), strict=True)),
        }
        for platform, digest in children.items()
    ]
    data = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
    digest = Digest.of(data)
    v2_write.store_blob(layout, data, digest)
    v2_write.write_link(layout, layout.revision_link(name, digest), digest)
    v2_write.write_tag(layout, name, tag, digest)
    return digest


def annotated(layout: V2Layout, name: str, tag: str, of: Digest) -> Digest:
    """Another manifest of the same config and layers as `of`, tagged `tag`."""
    doc = json.loads(layout.read_blob(of))
    data = json.dumps({**doc, "annotations": {"made": tag}}).encode()
    digest = Digest.of(data)
    v2_write.store_blob(layout, data, digest)
    v2_write.write_link(layout, layout.revision_link(name, digest), digest)
    v2_write.write_tag(layout, name, tag, digest)
    return digest


def test_each_layer_names_the_images_of_other_repositories_that_hold_it(tmp_path: Path) -> None:
    layout = default_layout(LocalDriver(tmp_path))
    app = write_image(layout, "team/app", "1.0", layer=b"base")
    annotated(layout, "team/app", "1.1", app.manifest)  # the same layer, another image
    write_image(layout, "team/copy", "2", layer=b"base")
    write_image(layout, "secret/keys", "v1", layer=b"base")
    write_image(layout, "team/other", "1", layer=b"other")
    child = write_image(layout, "team/multi", "child", layer=b"base")
    shutil.rmtree(tmp_path / layout.tag_dir("team/multi", "child"))  # reached by its index
    write_index(layout, "team/multi", "2.0", {"linux/arm64": child.manifest})
    view, _, _ = view_of(tmp_path)

    def bob(name: str) -> bool:
        return name.startswith("team/")

    def also_in(details: ImageDetails) -> list[str]:
        (layer,) = details.layers
        shown = [
            f"{h.repository}:{h.tag}" + (f" {h.platform}" if h.platform else "")
            for h in layer.shared_with
        ]
        return shown + ([f"+{layer.more}"] if layer.more else [])

    # before the store is indexed: this repository's images alone, and a note saying so
    first = view.image("team/app", "1.0", bob)
    assert also_in(first) == ["team/app:1.1"]
    assert first.sharing_note is not None and "still being read" in first.sharing_note

    view.catalog(bob)  # walks the store; the index is made in the background
    view.wait_for_walk()
    details = view.image("team/app", "1.0", bob)
    assert details.reference == str(app.manifest)
    assert also_in(details) == ["team/app:1.1", "team/copy:2", "team/multi:2.0 linux/arm64"]
    assert details.sharing_note is None
    assert also_in(view.image("team/app", "1.0")) == [  # whoever may pull everything
        "team/app:1.1",
        "secret/keys:v1",
        "team/copy:2",
        "team/multi:2.0 linux/arm64",
    ]
    # the index's image is the child, not the index: its own page leaves it out
    assert also_in(view.image("team/multi", str(child.manifest), bob))[:2] == [
        "team/app:1.0",
        "team/app:1.1",
    ]


def test_the_index_is_bounded_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = default_layout(LocalDriver(tmp_path))
    for i in range(SHOWN + 5):
        write_image(layout, f"r{i:02d}", "1", layer=b"base")
    view, _, _ = view_of(tmp_path)
    view.catalog(lambda _: True)
    view.wait_for_walk()
    (layer,) = view.image("r00", "1").layers
    assert [h.repository for h in layer.shared_with] == [f"r{i:02d}" for i in range(1, SHOWN + 1)]
    assert layer.more == 4

    monkeypatch.setattr(sharing, "MAX_REFERENCES", 3)
    view, _, _ = view_of(tmp_path)
    view.catalog(lambda _: True)
    view.wait_for_walk()
    details = view.image("r00", "1")
    assert [h.repository for h in details.layers[0].shared_with] == ["r01", "r02"]
    assert details.sharing_note is not None and "too large" in details.sharing_note


def test_the_first_catalog_names_every_repository_without_waiting_for_the_walk(
    tmp_path: Path,
) -> None:
    class HeldWalk(CountingDriver):
        """Holds the walk of the whole of repositories/ until `go` is set."""

        go = threading.Event()

        def walk(
            self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
        ) -> Iterator[Entry]:
            entries = super().walk(prefix, temporaries=temporaries, prune=prune)
            if prefix.endswith("/repositories"):
                assert self.go.wait(20)
            return entries

    layout = default_layout(LocalDriver(tmp_path))
    images = {
        f"org{i % 3}/app{i:02d}": write_image(layout, f"org{i % 3}/app{i:02d}", "1", b"x" * i)
        for i in range(PAGE_SIZE + 3)
    }
    write_image(layout, "org0/app00", "2", layer=b"other")
    write_image(layout, "org1", "1")  # a repository that is a namespace too
    (tmp_path / layout.repositories_dir() / "org2" / "not-a-repository").mkdir()
    app03 = images["org0/app03"]
    size = sum(len(layout.read_blob(d)) for d in (app03.config, *app03.layers))

    driver = HeldWalk(tmp_path)
    view = StoreView(default_layout(driver), str(tmp_path))
    try:
        first = view.catalog(lambda _: True)  # answered while the walk is held
        rows = {r.name: r for r in first.rows}
        assert list(rows)[:3] == ["org0/app00", "org0/app03", "org0/app06"]
        assert len(rows) == PAGE_SIZE and first.matching > PAGE_SIZE and first.pages == 2
        assert rows["org0/app00"].tags == 2 and rows["org0/app00"].pushed is not None
        assert rows["org0/app03"].tags == 1 and rows["org0/app03"].size == size
        assert "org1" in rows and "org2/not-a-repository" not in rows
        # fewer than a page match: the page waits for every name, and counts them
        fives = view.catalog(lambda _: True, "APP5", 1)
        assert [r.name for r in fives.rows] == ["org0/app51", "org1/app52", "org2/app50"]
        assert fives.complete and fives.matching == 3
        second = view.catalog(lambda _: True, "", 2)
        assert second.complete and second.matching == PAGE_SIZE + 4 and second.pages == 2
        everything = sorted([*images, "org1"], key=lambda n: n.split("/"))
        assert [r.name for r in first.rows] == everything[:PAGE_SIZE]
        assert [r.name for r in second.rows] == everything[PAGE_SIZE:]
    finally:
        driver.go.set()
        view.wait_for_walk()
    assert len(view.repositories()) == PAGE_SIZE + 4


def test_the_index_is_made_again_only_when_a_walk_finds_tags_changed(tmp_path: Path) -> None:
    now = [0.0]
    driver = CountingDriver(tmp_path)
    layout = default_layout(driver)
    write_image(layout, "a/one", "1", layer=b"base")
    view = StoreView(layout, str(tmp_path), ttl=10, clock=lambda: now[0])
    view.catalog(lambda _: True)
    view.wait_for_walk()
    first = view.store_index()
    assert first is not None

    now[0] = 10.0  # the walk is renewed; nothing changed: the index stays
    view.catalog(lambda _: True)
    view.wait_for_walk()
    assert view.store_index() is first

    write_image(layout, "b/two", "1", layer=b"base")
    now[0] = 20.0  # the walk that finds b/two is followed by a new index
    view.catalog(lambda _: True)
    view.wait_for_walk()
    made = view.store_index()
    assert made is not first and made is not None
    base = str(Digest.of(b"base"))
    assert [h.repository for h in made.layers.holders(base)] == ["a/one", "b/two"]


def test_a_store_whose_walk_is_long_is_walked_less_often(tmp_path: Path) -> None:
    now = [0.0]

    class SlowWalks(CountingDriver):
        def walk(
            self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
        ) -> Iterator[Entry]:
            if prefix.endswith("/repositories"):
                now[0] += 5.0  # the whole tree takes five seconds
            return super().walk(prefix, temporaries=temporaries, prune=prune)

    driver = SlowWalks(tmp_path)
    write_image(default_layout(driver), "app", "1")
    view = StoreView(default_layout(driver), str(tmp_path), ttl=10, clock=lambda: now[0])
    view.repositories()
    walks = driver.walked.count(view.layout.repositories_dir())
    for at in (20.0, 40.0):  # past the ttl, within nine walks' time (45 s)
        now[0] = at
        view.repositories()
        view.wait_for_walk()
        assert driver.walked.count(view.layout.repositories_dir()) == walks
    now[0] = 51.0
    view.repositories()
    view.wait_for_walk()
    assert driver.walked.count(view.layout.repositories_dir()) == walks + 1


def test_a_v1_images_layers_name_the_other_images_holding_them(tmp_path: Path) -> None:
    from regtool.layout.detect import detect_layout
    from tests.v1store import V1Store

    store = V1Store(LocalDriver(tmp_path))
    base = store.add_image()
    app = store.add_image(base.image_id)
    store.tag("exampleapp", "1.0", app)
    store.tag("exampleapp", "base", base)
    store.tag("team/tool", "2", store.add_image(base.image_id))
    store.tag("secret/keys", "1", store.add_image(base.image_id))
    view = StoreView(detect_layout(LocalDriver(tmp_path)), str(tmp_path))
    view.catalog(lambda _: True)
    view.wait_for_walk()
    details = view.image("exampleapp", "1.0", lambda n: not n.startswith("secret/"))
    assert [layer.digest for layer in details.layers] == [base.image_id, app.image_id]
    shared = {
        layer.digest: [f"{h.repository}:{h.tag}" for h in layer.shared_with]
        for layer in details.layers
    }
    assert shared == {base.image_id: ["exampleapp:base", "team/tool:2"], app.image_id: []}


def test_a_store_gone_during_a_renewal_begun_earlier_is_not_answered(tmp_path: Path) -> None:
    """A renewal of the kept walk begun by an earlier page may still be under way when
    the store goes away: the next page is not answered from the old walk either."""

    class HeldRenewal(LocalDriver):
        """Holds walks of repositories/ once `hold` is set, until `go` is."""

        hold = False
        go = threading.Event()

        def walk(
            self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
        ) -> Iterator[Entry]:
            if self.hold and prefix.endswith("/repositories"):
                assert self.go.wait(20)
            return super().walk(prefix, temporaries=temporaries, prune=prune)

    root = tmp_path / "store"
    write_image(default_layout(LocalDriver(root)), "pub", "latest")
    driver = HeldRenewal(root)
    now = [0.0]
    view = StoreView(default_layout(driver), str(root), ttl=60, clock=lambda: now[0])
    try:
        view.catalog(lambda _: True)
        view.wait_for_walk()
        driver.hold = True
        now[0] += 3600  # the kept walk is due for renewal
        assert [r.name for r in view.catalog(lambda _: True).rows] == ["pub"]  # renewal begun
        root.rename(tmp_path / "gone")
        with pytest.raises(StorageError, match="no longer there"):
            view.catalog(lambda _: True)
    finally:
        driver.go.set()
