"""One conformance suite for every storage driver (see `driver` in tests/storage/conftest.py).

Each test cleans up what it wrote; the fixture's teardown walks the whole root and fails
if anything was left behind, so a driver that leaks (Swift segments, temp files) fails.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from regtool.errors import InvalidPath, PathNotFound
from regtool.storage.base import Driver


def _files(driver: Driver, prefix: str = "") -> dict[str, int | None]:
    return {e.path: e.size for e in driver.walk(prefix)}


def test_empty_root_lists_nothing(driver: Driver) -> None:
    assert driver.list("") == []
    assert list(driver.walk("")) == []


def test_put_get_overwrite(driver: Driver) -> None:
    driver.put("a/b/file", b"first")
    assert driver.get("a/b/file") == b"first"
    driver.put("a/b/file", b"second, longer")
    assert driver.get("a/b/file") == b"second, longer"
    driver.put("a/empty", b"")
    assert driver.get("a/empty") == b""
    driver.delete("a")


def test_missing_paths_raise_path_not_found(driver: Driver) -> None:
    for call in (
        lambda: driver.get("nope/file"),
        lambda: driver.stat("nope"),
        lambda: driver.list("nope"),
        lambda: driver.open("nope"),
        lambda: driver.delete("nope"),
        lambda: driver.move("nope", "elsewhere"),
        lambda: driver.writer("nope", append=True),
    ):
        with pytest.raises(PathNotFound) as info:
            call()
        assert isinstance(info.value, FileNotFoundError)
    assert not driver.exists("nope")
    assert list(driver.walk("nope")) == []


@pytest.mark.parametrize("bad", ["/abs", "a//b", "a/../b", "..", "a/./b", "trailing/", "a/.."])
def test_invalid_paths_are_refused(driver: Driver, bad: str) -> None:
    with pytest.raises(InvalidPath):
        driver.put(bad, b"x")
    with pytest.raises(InvalidPath):
        driver.get(bad)


def test_stat_files_and_directories(driver: Driver) -> None:
    driver.put("dir/sub/file", b"12345")
    entry = driver.stat("dir/sub/file")
    assert (entry.path, entry.is_dir, entry.size) == ("dir/sub/file", False, 5)
    assert entry.modified is not None
    assert driver.stat("dir").is_dir
    assert driver.stat("dir/sub").is_dir
    assert driver.exists("dir/sub/file")
    driver.delete("dir")


def test_list_is_one_level(driver: Driver) -> None:
    driver.put("top/a", b"1")
    driver.put("top/b", b"22")
    driver.put("top/sub/c", b"333")
    driver.put("top/sub/deeper/d", b"4444")
    entries = {e.path: e for e in driver.list("top")}
    assert set(entries) == {"top/a", "top/b", "top/sub"}
    assert entries["top/sub"].is_dir
    assert not entries["top/a"].is_dir
    assert entries["top/b"].size == 2
    assert {e.path for e in driver.list("")} == {"top"}
    driver.delete("top")


def test_walk_is_recursive_and_respects_prefix_boundaries(driver: Driver) -> None:
    driver.put("w/a", b"1")
    driver.put("w/x/b", b"22")
    driver.put("w/x/y/z/c", b"333")
    driver.put("wx/sibling", b"no")
    assert _files(driver, "w") == {"w/a": 1, "w/x/b": 2, "w/x/y/z/c": 3}
    assert _files(driver, "w/x") == {"w/x/b": 2, "w/x/y/z/c": 3}
    assert set(_files(driver)) == {"w/a", "w/x/b", "w/x/y/z/c", "wx/sibling"}
    assert all(e.modified is not None for e in driver.walk("w"))
    driver.delete("w")
    driver.delete("wx")


def test_get_many_reads_each_file_or_says_why_not(driver: Driver) -> None:
    small = {f"many/{n:02d}/link": f"sha256:{n:064x}".encode() for n in range(40)}
    large = os.urandom(1536 * 1024)  # past what SFTP reads in the batch: read alone
    for path, data in small.items():
        driver.put(path, data)
    driver.put("many/large", large)
    driver.put("many/empty", b"")
    asked = [*small, "many/large", "many/empty", "many/absent", "many/00", "many//bad"]
    found = driver.get_many([*asked, "many/01/link"], jobs=4)
    assert list(found) == asked  # in the order asked, each once
    for path, data in small.items():
        assert found[path] == data
    assert found["many/large"] == large and found["many/empty"] == b""
    assert isinstance(found["many/absent"], PathNotFound)
    assert isinstance(found["many/00"], PathNotFound)  # a directory holds no content
    assert isinstance(found["many//bad"], InvalidPath)
    assert driver.get_many([]) == {}
    driver.delete("many")


def test_walk_passes_over_pruned_directories(driver: Driver) -> None:
    kept = {"p/a/file", "p/a/skip.txt", "p/b/keep/skip/deep/file", "p/c/file"}
    pruned = {"p/a/skip/file", "p/a/skip/x/y/file", "p/c/skip/file"}
    for path in kept | pruned:
        driver.put(path, b"x")
    asked: list[str] = []

    def prune(directory: str) -> bool:
        asked.append(directory)
        return directory in ("p/a/skip", "p/c/skip")

    found = {e.path for e in driver.walk("p", prune=prune)}
    if driver.name == "swift":  # one flat listing: the hint spares nothing, and is not asked
        assert found == kept | pruned and asked == []
    else:  # every other directory asked once, before it is read; none below a pruned one
        assert found == kept
        walked = ["p/a", "p/b", "p/b/keep", "p/b/keep/skip", "p/b/keep/skip/deep", "p/c"]
        assert sorted(asked) == sorted([*walked, "p/a/skip", "p/c/skip"])
    assert {e.path for e in driver.walk("p")} == kept | pruned  # a walk without the hint
    driver.delete("p")


def test_ranged_reads(driver: Driver) -> None:
    data = bytes(range(256)) * 40
    driver.put("r/blob", data)
    with driver.open("r/blob") as f:
        assert f.read() == data
    with driver.open("r/blob", offset=1000) as f:
        assert f.read() == data[1000:]
    with driver.open("r/blob", offset=10, length=20) as f:
        assert f.read() == data[10:30]
    with driver.open("r/blob", offset=len(data) - 5, length=100) as f:
        assert f.read() == data[-5:]
    with driver.open("r/blob", offset=len(data)) as f:
        assert f.read() == b""
    with driver.open("r/blob", offset=len(data) + 100) as f:
        assert f.read() == b""
    driver.delete("r")


def test_writer_content_visible_only_after_commit(driver: Driver) -> None:
    w = driver.writer("up/data")
    w.write(b"hello ")
    w.write(b"world")
    assert w.size == 11
    assert not driver.exists("up/data")
    w.commit()
    assert driver.get("up/data") == b"hello world"
    assert driver.stat("up/data").size == 11
    driver.delete("up")


def test_writer_cancel_leaves_nothing(driver: Driver) -> None:
    with driver.writer("cancelled/data") as w:
        w.write(b"x" * 1000)
    assert not driver.exists("cancelled/data")
    assert list(driver.walk("")) == []


def test_writer_replaces_existing_file_on_commit(driver: Driver) -> None:
    driver.put("rep/f", b"old content")
    w = driver.writer("rep/f")
    w.write(b"new")
    assert driver.get("rep/f") == b"old content"
    w.commit()
    assert driver.get("rep/f") == b"new"
    driver.delete("rep")


def test_append_writer_continues_and_cancel_restores(driver: Driver) -> None:
    w = driver.writer("ap/data")
    w.write(b"part one|")
    w.commit()
    w = driver.writer("ap/data", append=True)
    assert w.size == 9
    w.write(b"part two|")
    assert w.size == 18
    w.commit()
    assert driver.get("ap/data") == b"part one|part two|"
    w = driver.writer("ap/data", append=True)
    w.write(b"discarded")
    w.cancel()
    assert driver.get("ap/data") == b"part one|part two|"
    assert driver.stat("ap/data").size == 18
    driver.delete("ap")


def test_large_streamed_object(driver: Driver, segment_size: int) -> None:
    # More than two segments on Swift (the fixture uses small segments), several chunks.
    chunk = os.urandom(segment_size // 2 + 7)
    w = driver.writer("big/data")
    for _ in range(5):
        w.write(chunk)
    w.commit()
    total = len(chunk) * 5
    assert driver.stat("big/data").size == total
    with driver.open("big/data") as f:
        assert f.read() == chunk * 5
    with driver.open("big/data", offset=segment_size - 3, length=segment_size) as f:
        assert f.read() == (chunk * 5)[segment_size - 3 : 2 * segment_size - 3]
    w = driver.writer("big/data", append=True)
    w.write(b"tail")
    w.commit()
    assert driver.stat("big/data").size == total + 4
    driver.move("big/data", "big/moved")
    assert not driver.exists("big/data")
    with driver.open("big/moved", offset=total) as f:
        assert f.read() == b"tail"
    driver.delete("big")  # must take the segments along; teardown checks


def test_move_replaces_and_removes_source(driver: Driver) -> None:
    driver.put("mv/src", b"source")
    driver.put("mv/other/dst", b"old")
    driver.move("mv/src", "mv/other/dst")
    assert driver.get("mv/other/dst") == b"source"
    assert not driver.exists("mv/src")
    driver.move("mv/other/dst", "mv/new/deep/place")
    assert driver.get("mv/new/deep/place") == b"source"
    driver.delete("mv")


def test_delete_file_and_prefix(driver: Driver) -> None:
    driver.put("del/keep", b"k")
    driver.put("del/gone/a", b"a")
    driver.put("del/gone/b/c", b"c")
    driver.put("del/gonealike", b"sibling with a common prefix")
    driver.delete("del/gone")
    assert set(_files(driver, "del")) == {"del/keep", "del/gonealike"}
    driver.delete("del/keep")
    assert set(_files(driver, "del")) == {"del/gonealike"}
    driver.delete("del")
    assert list(driver.walk("")) == []


def test_delete_many(driver: Driver) -> None:
    paths = [f"many/{i:03d}/f" for i in range(30)]
    for p in paths:
        driver.put(p, p.encode())
    driver.put("many/stays", b"s")
    report = driver.delete_many([*paths, "many/never-existed"])
    assert not report.failed
    assert set(report.deleted) == {*paths, "many/never-existed"}
    assert set(_files(driver, "many")) == {"many/stays"}
    driver.delete("many")


def test_unicode_and_deep_paths(driver: Driver) -> None:
    deep = "/".join(f"level{i}" for i in range(20))
    names = [f"uni/{deep}/file", "uni/ünïcødé/名前 with spaces", "uni/emoji/🐳.json"]
    for n in names:
        driver.put(n, n.encode())
    for n in names:
        assert driver.get(n) == n.encode()
    assert set(_files(driver, "uni")) == set(names)
    assert {e.name for e in driver.list("uni/ünïcødé")} == {"名前 with spaces"}
    driver.delete("uni")


def test_concurrent_reads(driver: Driver) -> None:
    for i in range(24):
        driver.put(f"conc/{i}", str(i).encode() * 100)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: driver.get(f"conc/{i}"), range(24)))
    assert got == [str(i).encode() * 100 for i in range(24)]
    driver.delete("conc")


def test_large_object_info(driver: Driver, segment_size: int) -> None:
    driver.put("lo/plain", b"abc")
    w = driver.writer("lo/big")
    w.write(os.urandom(2 * segment_size + 1))
    w.commit()
    plain, big = driver.large_object("lo/plain"), driver.large_object("lo/big")
    if not driver.has_large_objects:
        assert plain is None and big is None  # and no request was needed
    else:
        assert plain is not None and (plain.size, plain.segment_set) == (3, None)
        assert big is not None and big.size == 2 * segment_size + 1
        assert big.segment_set is not None
        assert len(list(driver.walk(big.segment_set))) == 3
        with pytest.raises(PathNotFound):
            driver.large_object("lo/missing")
    # the segment set alone: the same as large_object's, one request where there is one
    before = driver.request_count()
    assert driver.segment_set("lo/plain") is None
    assert driver.segment_set("lo/big") == (big.segment_set if big else None)
    if driver.has_large_objects:
        assert before is not None and driver.request_count() == before + 2
        with pytest.raises(PathNotFound):
            driver.segment_set("lo/missing")
    else:
        assert driver.request_count() == before
    driver.delete("lo")


def test_create_root_is_idempotent(driver: Driver) -> None:
    driver.create_root()
    driver.create_root()
    assert driver.root_exists()  # a missing one: tests/cli/test_ls_errors.py
    driver.put("root/file", b"x")
    assert driver.get("root/file") == b"x"
    driver.delete("root")


def test_put_if_absent_creates_once(driver: Driver) -> None:
    assert driver.put_if_absent("lease/dir/lock", b"first") is True
    assert driver.put_if_absent("lease/dir/lock", b"second") is False
    assert driver.get("lease/dir/lock") == b"first"
    assert [e.path for e in driver.walk("lease", temporaries=True)] == ["lease/dir/lock"]
    driver.delete("lease/dir/lock")
    assert driver.put_if_absent("lease/dir/lock", b"third") is True
    assert driver.get("lease/dir/lock") == b"third"
    driver.delete("lease")


def test_put_if_absent_has_one_winner(driver: Driver) -> None:
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda i: driver.put_if_absent("race/lock", b"%d" % i), range(8)))
    if driver.name == "swift":
        # Swift checks If-None-Match when a PUT starts: PUTs in flight together can all
        # pass, the latest one's content winning (see Driver.put_if_absent).
        assert won.count(True) >= 1
        assert int(driver.get("race/lock")) in [i for i, ok in enumerate(won) if ok]
    else:
        assert won.count(True) == 1
        assert driver.get("race/lock") == b"%d" % won.index(True)
    driver.delete("race")


def test_walk_hides_temporaries_unless_asked(driver: Driver) -> None:
    driver.put("tmp/kept", b"data")
    writer = driver.writer("tmp/pending")
    writer.write(b"half written")
    try:
        assert {e.path for e in driver.walk("tmp")} == {"tmp/kept"}
        found = list(driver.walk("tmp", temporaries=True))
        assert {e.path for e in found if not e.temporary} == {"tmp/kept"}
        if driver.name == "swift":  # no temporary names: segments stand for them
            assert not any(e.temporary for e in found)
        else:
            assert [e.path.rsplit("/", 1)[0] for e in found if e.temporary] == ["tmp"]
    finally:
        writer.cancel()
    assert not any(e.temporary for e in driver.walk("tmp", temporaries=True))
    driver.delete("tmp")


def test_listing_checksums_are_content_md5s_where_given(driver: Driver) -> None:
    driver.put("sums/link", b"sha256:" + b"0" * 64)
    (entry,) = list(driver.walk("sums"))
    if driver.name == "swift":
        assert entry.checksum == hashlib.md5(b"sha256:" + b"0" * 64).hexdigest()
    else:
        assert entry.checksum is None
    driver.delete("sums")
