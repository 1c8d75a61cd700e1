"""What the UI's pages are made of, without a browser or a server: `StoreView` over a
local store whose driver counts what it reads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from regtool.layout.detect import default_layout
from regtool.layout.v2 import V2Layout
from regtool.storage.base import Entry
from regtool.storage.local import LocalDriver
from regtool.ui.data import StoreView
from tests.v2store import write_image


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

    def walk(self, prefix: str = "", *, temporaries: bool = False) -> Iterator[Entry]:
        with self.lock:
            self.walked.append(prefix)
        return super().walk(prefix, temporaries=temporaries)


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
    assert manifests <= set(driver.read)  # read once, and kept in the facts file

    again, driver, _ = view_of(tmp_path)  # a new process would start the same way
    browse(again)
    assert not manifests & set(driver.read), driver.read
    assert again.facts is not None and again.facts.hits >= 2
