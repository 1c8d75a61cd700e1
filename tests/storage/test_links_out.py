"""Links out of a store, for every driver whose store lies on a disk (local, sftp), each
wrapped as `Location.open()` wraps it: no call reads, writes, creates or removes anything
outside the root, whatever link lies on its path, and what it meets is refused with an
error naming the link's way out, never taken for a missing path. Links that stay inside
are followed by every call, as listings follow them. And `regtool serve` over such a
store neither hands out nor writes what lies outside."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from regtool.errors import PathNotFound, StorageError
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest
from regtool.storage import beneath
from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from regtool.storage.retry import RetryingDriver
from tests.server.conftest import start_registry

OUT = "outside the store"


@dataclass
class OnDisk:
    driver: Driver
    disk: Path  # the store's root on this machine
    outside: Path  # a directory beside it, which no call may touch

    def snapshot(self) -> dict[str, bytes | None]:
        """Everything outside: files with their bytes, directories as None."""
        found: dict[str, bytes | None] = {}
        for top, dirs, files in os.walk(self.outside):
            for d in dirs:
                found[os.path.relpath(os.path.join(top, d), self.outside)] = None
            for f in files:
                path = os.path.join(top, f)
                found[os.path.relpath(path, self.outside)] = Path(path).read_bytes()
        return found


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Driver, Path]:
    disk = tmp_path / "store"
    disk.mkdir()
    return LocalDriver(disk), disk


def _sftp(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Driver, Path]:
    service = request.getfixturevalue("sshd_service")
    name = f"links-{uuid.uuid4().hex[:8]}"
    return service.driver(name), service.data_root / name


@pytest.fixture(params=[_local, _sftp], ids=["local", "sftp"])
def on_disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnDisk]:
    raw, disk = request.param(request, tmp_path)
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret").write_bytes(b"the server's secret")
    (outside / "dir" / "file").write_bytes(b"a file outside")
    driver = RetryingDriver(raw)
    try:
        yield OnDisk(driver, disk, outside)
    finally:
        driver.close()
        shutil.rmtree(disk, ignore_errors=True)


def _refused(call: Callable[[], object]) -> StorageError:
    with pytest.raises(StorageError, match=OUT) as info:
        call()
    assert not isinstance(info.value, PathNotFound)
    return info.value


def _get_one_of_many(d: Driver, path: str) -> bytes:
    """`path` read in a batch beside a file that is inside: only `path` fails."""
    d.put("inside/file", b"inside")
    try:
        found = d.get_many([path, "inside/file"])
    finally:
        d.delete("inside")
    assert found["inside/file"] == b"inside"
    result = found[path]
    if isinstance(result, Exception):
        raise result
    return result


def _read(d: Driver, path: str) -> bytes:
    with d.open(path) as f:
        return f.read()


def _write(d: Driver, path: str, data: bytes, append: bool = False) -> None:
    with d.writer(path, append=append) as w:
        w.write(data)
        w.commit()


def test_a_link_out_to_a_file_is_never_read_nor_written(on_disk: OnDisk) -> None:
    d, disk = on_disk.driver, on_disk.disk
    before = on_disk.snapshot()
    (disk / "blobs" / "ab").mkdir(parents=True)
    (disk / "blobs" / "ab" / "data").symlink_to(on_disk.outside / "secret")
    link = "blobs/ab/data"
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: d.get(link),
        "get_many": lambda: _get_one_of_many(d, link),
        "open": lambda: _read(d, link),
        "ranged open": lambda: d.open(link, 3, 5).read(),
        "stat": lambda: d.stat(link),
        "exists": lambda: d.exists(link),
        "append": lambda: _write(d, link, b"appended", append=True),
        "move away": lambda: d.move(link, "elsewhere/data"),
        "list": lambda: d.list("blobs/ab"),
        "walk": lambda: list(d.walk("blobs")),
    }
    for name, call in calls.items():
        error = _refused(call)
        assert "blobs/ab/data" in str(error), name
        assert "the server's secret" not in str(error), name
    assert on_disk.snapshot() == before
    # Replacing the link acts on the link: refused (sftp) or the link replaced (local),
    # never written through.
    try:
        d.put(link, b"new content")
    except StorageError as e:
        assert OUT in str(e)
    else:
        assert not (disk / link).is_symlink() and d.get(link) == b"new content"
    assert on_disk.snapshot() == before
    if (disk / link).is_symlink():
        d.delete(link)  # the link itself goes, not what it leads to
    else:
        (disk / link).unlink()
    assert not os.path.lexists(disk / link) and on_disk.snapshot() == before


def test_a_link_out_to_a_directory_is_never_entered(on_disk: OnDisk) -> None:
    d, disk = on_disk.driver, on_disk.disk
    d.put("inside/src", b"source")
    (disk / "repositories").mkdir()
    (disk / "repositories" / "evil").symlink_to(on_disk.outside / "dir")
    before = on_disk.snapshot()
    evil = "repositories/evil"
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: d.get(f"{evil}/file"),
        "open": lambda: _read(d, f"{evil}/file"),
        "stat": lambda: d.stat(f"{evil}/file"),
        "stat of the link": lambda: d.stat(evil),
        "list": lambda: d.list(evil),
        "list above": lambda: d.list("repositories"),
        "walk": lambda: list(d.walk(evil)),
        "walk above": lambda: list(d.walk("")),
        "put": lambda: d.put(f"{evil}/new", b"pushed"),
        "put, making directories": lambda: d.put(f"{evil}/a/b/c", b"pushed"),
        "writer": lambda: _write(d, f"{evil}/_uploads/x/data", b"pushed"),
        "append": lambda: _write(d, f"{evil}/file", b"pushed", append=True),
        "put_if_absent": lambda: d.put_if_absent(f"{evil}/lock", b"lease"),
        "move in": lambda: d.move("inside/src", f"{evil}/moved"),
        "move out": lambda: d.move(f"{evil}/file", "inside/taken"),
        "delete": lambda: d.delete(f"{evil}/file"),
        "delete below": lambda: d.delete(f"{evil}/a"),
    }
    for name, call in calls.items():
        error = _refused(call)
        assert "repositories/evil" in str(error), name
        assert on_disk.snapshot() == before, name
    report = d.delete_many([f"{evil}/file", "inside/absent"])
    assert report.deleted == ["inside/absent"] and OUT in report.failed[f"{evil}/file"]
    assert on_disk.snapshot() == before
    assert d.get("inside/src") == b"source" and not d.exists("inside/taken")
    d.delete(evil)  # the link itself
    assert not os.path.lexists(disk / evil) and on_disk.snapshot() == before
    d.delete("inside")


def test_links_inside_the_store_are_followed_by_every_call(on_disk: OnDisk) -> None:
    d, disk = on_disk.driver, on_disk.disk
    d.put("real/dir/file", b"content")
    (disk / "alias").symlink_to("real")
    (disk / "absolute").symlink_to(disk / "real")
    (disk / "real" / "dir" / "same").symlink_to("file")
    (disk / "real" / "up").symlink_to("../real/dir")
    for way in ("alias/dir", "absolute/dir", "real/up"):
        assert d.get(f"{way}/file") == b"content"
        assert _read(d, f"{way}/same") == b"content"
        assert d.stat(f"{way}/file").size == 7
        assert "file" in {e.name for e in d.list(way)}
        d.put(f"{way}/new", b"new")
        _write(d, f"{way}/new", b" more", append=True)
        assert (disk / "real/dir/new").read_bytes() == b"new more"
        assert d.put_if_absent(f"{way}/lock", b"1") and not d.put_if_absent(f"{way}/lock", b"2")
        d.move(f"{way}/new", f"{way}/moved")
        assert (disk / "real/dir/moved").read_bytes() == b"new more"
        d.delete_many([f"{way}/moved", f"{way}/lock"])
        assert sorted(os.listdir(disk / "real/dir")) == ["file", "same"]
    for link in ("alias", "absolute", "real/up", "real/dir/same"):
        d.delete(link)
    d.delete("real")
    assert list(d.walk("")) == []


# -- the race between a check and the call it guards (local) --------------------------------


def test_a_directory_swapped_for_a_link_after_it_was_checked_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The swap happens right after the walk opened `repositories` (a hook on os.open):
    # a driver that checked the whole path first and then used it would follow the link.
    store, outside = tmp_path / "store", tmp_path / "outside"
    (store / "repositories" / "app").mkdir(parents=True)
    (store / "repositories" / "app" / "file").write_bytes(b"inside")
    outside.mkdir()
    (outside / "file").write_bytes(b"outside")
    real_open = os.open
    swaps: list[str] = []

    def open_and_swap(path: object, flags: int, *args: object, **kwargs: object) -> int:
        fd = real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]
        if path == "repositories" and kwargs.get("dir_fd") is not None and not swaps:
            app = store / "repositories" / "app"
            app.rename(store / "repositories" / "moved-away")
            app.symlink_to(outside)
            swaps.append("app")
        return fd

    monkeypatch.setattr(beneath.os, "open", open_and_swap)
    monkeypatch.setattr(beneath._openat2, "available", False)  # the walk, as without openat2
    driver = LocalDriver(store)
    _refused(lambda: driver.get("repositories/app/file"))
    assert swaps == ["app"]
    swaps.clear()
    (store / "repositories" / "app").unlink()
    (store / "repositories" / "moved-away").rename(store / "repositories" / "app")
    _refused(lambda: driver.put("repositories/app/new", b"pushed"))
    assert sorted(os.listdir(outside)) == ["file"]
    assert (outside / "file").read_bytes() == b"outside"


def test_a_directory_swapped_for_a_link_after_openat2_opened_it_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where the kernel has openat2, a path without links is reached in one call: the
    # swap right after it cannot send what follows outside, which uses the directory
    # opened (now `moved-away`), not the name.
    assert beneath._openat2.available, "Linux 5.6 or later: openat2 is what this tests"
    store, outside = tmp_path / "store", tmp_path / "outside"
    (store / "repositories" / "app").mkdir(parents=True)
    (store / "repositories" / "app" / "file").write_bytes(b"inside")
    outside.mkdir()
    (outside / "file").write_bytes(b"outside")
    real_open_dir = beneath._openat2.open_dir
    opened: list[str] = []

    def open_and_swap(dir_fd: int, path: str) -> int | None:
        fd = real_open_dir(dir_fd, path)
        opened.append(path)
        if path == "repositories/app" and (store / "repositories" / "app").is_dir():
            app = store / "repositories" / "app"
            app.rename(store / "repositories" / "moved-away")
            app.symlink_to(outside)
        return fd

    monkeypatch.setattr(beneath._openat2, "open_dir", open_and_swap)
    driver = LocalDriver(store)
    assert driver.get("repositories/app/file") == b"inside"
    (store / "repositories" / "app").unlink()
    (store / "repositories" / "moved-away").rename(store / "repositories" / "app")
    driver.put("repositories/app/new", b"pushed")
    assert opened == ["repositories/app", "repositories/app"]
    assert sorted(os.listdir(outside)) == ["file"]
    assert (outside / "file").read_bytes() == b"outside"
    assert (store / "repositories" / "moved-away" / "new").read_bytes() == b"pushed"


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The paths the local driver's path resolution passes to `os.open`, in order."""
    real_open = os.open
    opened: list[object] = []

    def counting_open(path: object, *args: object, **kwargs: object) -> int:
        opened.append(path)
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(beneath.os, "open", counting_open)
    return opened


def test_a_path_without_links_takes_one_call_to_reach(tmp_path: Path, opens: list[object]) -> None:
    # A layer link of distribution's layout lies ten directories down: walked, that is
    # ten opens and ten closes a storage call; with openat2 the root and one open.
    assert beneath._openat2.available, "Linux 5.6 or later: openat2 is what this tests"
    deep = "docker/registry/v2/repositories/app/_layers/sha256/" + "ab" * 32 + "/link"
    driver = LocalDriver(tmp_path)
    driver.put(deep, b"sha256:" + b"ab" * 32)
    opens.clear()  # what was opened to set the test up
    assert driver.get(deep) == b"sha256:" + b"ab" * 32
    assert opens[1:] == ["link"]  # the root, then the file in the directory openat2 gave
    opens.clear()
    with pytest.raises(PathNotFound):
        driver.get(deep.replace("app", "nothing-here"))
    assert len(opens) == 1  # the root: a missing directory is told by the same call


def test_new_directories_are_made_below_the_deepest_there_and_pruned_from_the_deepest(
    tmp_path: Path, opens: list[object]
) -> None:
    # A tag's link lies two directories below an existing one: only those are opened,
    # as they are made; deleting it prunes the empty ones, each found in one call.
    assert beneath._openat2.available, "Linux 5.6 or later: openat2 is what this tests"
    repo = "docker/registry/v2/repositories/app"
    driver = LocalDriver(tmp_path)
    driver.put(f"{repo}/_layers/sha256/ab/link", b"x")
    opens.clear()  # what was opened to set the test up
    tag = f"{repo}/_manifests/tags/t1/current/link"
    driver.put(tag, b"sha256:" + b"cd" * 32)
    assert opens[1:5] == ["_manifests", "tags", "t1", "current"] and len(opens) == 6
    assert (tmp_path / tag).read_bytes() == b"sha256:" + b"cd" * 32
    opens.clear()
    driver.delete(tag)
    assert not (tmp_path / repo / "_manifests").exists()
    assert (tmp_path / repo / "_layers" / "sha256" / "ab" / "link").exists()
    assert set(opens) == {tmp_path}  # the root, for each directory: none walked


# -- regtool serve ------------------------------------------------------------------------


def test_serve_neither_hands_out_nor_writes_what_lies_outside(on_disk: OnDisk) -> None:
    d, disk = on_disk.driver, on_disk.disk
    reg = start_registry(d, disk)
    try:
        _serve_over_links_out(on_disk, reg.url)
    finally:
        reg.stop()


def _serve_over_links_out(on_disk: OnDisk, url: str) -> None:
    d, disk = on_disk.driver, on_disk.disk
    layout = V2Layout(d)
    before = on_disk.snapshot()
    # A blob whose data is a link to a file outside, linked into a repository.
    secret = (on_disk.outside / "secret").read_bytes()
    digest = Digest("sha256", hashlib.sha256(secret).hexdigest())
    data = disk / layout.blob_data(digest)
    data.parent.mkdir(parents=True)
    data.symlink_to(on_disk.outside / "secret")
    d.put(layout.layer_link("h/x", digest), str(digest).encode())
    # A repository that is a link to a directory outside.
    evil = disk / layout.repository_dir("evil")
    evil.parent.mkdir(parents=True, exist_ok=True)
    evil.symlink_to(on_disk.outside / "dir")
    with httpx.Client(base_url=url, timeout=30) as client:
        got = client.get(f"/v2/h/x/blobs/{digest}")
        assert got.status_code >= 400 and secret not in got.content
        pushed = b"layer bytes"
        pushed_digest = f"sha256:{hashlib.sha256(pushed).hexdigest()}"
        started = client.post("/v2/evil/blobs/uploads/")
        if started.status_code == 202:
            location = started.headers["Location"]
            sep = "&" if "?" in location else "?"
            put = client.put(f"{location}{sep}digest={pushed_digest}", content=pushed)
            assert put.status_code >= 400
        else:
            assert started.status_code >= 400
    assert on_disk.snapshot() == before
