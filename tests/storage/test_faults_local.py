"""What a local store can hold besides files and directories, beyond what test_faults.py
checks for every store on disk: a dangling link, a store that is itself a link, sockets
and fifos that must never be opened, a disk that fails a read, and ls, verify and gc on a
store with link loops. See the local driver's module docstring for the rules."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import threading
from pathlib import Path

import pytest

from regtool.errors import PathNotFound, StorageError
from regtool.layout.v2 import V2Layout
from regtool.storage.local import LocalDriver
from tests.clirunner import Cli
from tests.v2store import write_image


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    root.mkdir()
    return root


def _files(driver: LocalDriver, prefix: str = "") -> set[str]:
    return {e.path for e in driver.walk(prefix)}


def _put(root: Path, rel: str, data: bytes = b"x") -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def test_dangling_links_are_skipped_and_a_linked_root_is_followed(
    root: Path, tmp_path: Path
) -> None:
    _put(root, "dir/file")
    os.symlink("nowhere", root / "dir/dangling")
    linked = tmp_path / "linked-root"
    os.symlink(root, linked)  # a LOCATION that is itself a link
    driver = LocalDriver(linked)
    assert _files(driver) == {"dir/file"}
    assert {e.path for e in driver.list("dir")} == {"dir/file"}


def test_special_files_are_skipped_and_never_read(root: Path, tmp_path: Path) -> None:
    _put(root, "dir/file")
    os.mkfifo(root / "dir/fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "dir/sock"))
    try:
        os.symlink("fifo", root / "dir/to-fifo")
        driver = LocalDriver(root)
        assert _files(driver) == {"dir/file"}
        assert {e.path for e in driver.list("dir")} == {"dir/file"}
        # Opening a fifo for reading would wait for a writer forever: refused at once.
        failures: list[BaseException] = []

        def refuse() -> None:
            try:
                for path in ("dir/fifo", "dir/to-fifo", "dir/sock"):
                    for call in (driver.get, driver.open, driver.stat):
                        with pytest.raises(StorageError, match="not a regular file"):
                            call(path)
            except BaseException as e:
                failures.append(e)

        worker = threading.Thread(target=refuse, daemon=True)
        worker.start()
        worker.join(10)
        if worker.is_alive():
            with contextlib.suppress(OSError):  # a blocked reader: give it a writer
                os.close(os.open(root / "dir/fifo", os.O_WRONLY | os.O_NONBLOCK))
            pytest.fail("reading a fifo blocked")
        if failures:
            raise failures[0]
    finally:
        sock.close()


def test_a_read_error_of_the_disk_is_a_storage_error(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No real disk fails on demand: the file under the reader fails with EIO.
    _put(root, "blob", b"x" * 100_000)
    driver = LocalDriver(root)

    class Failing(io.FileIO):
        def readinto(self, buffer: object) -> int:
            raise OSError(5, "Input/output error")

    def open_failing(path: str) -> io.FileIO:
        return Failing(root / path, "rb")

    monkeypatch.setattr(driver, "_open_file", open_failing)
    with driver.open("blob") as f, pytest.raises(StorageError) as info:
        f.read()
    assert not isinstance(info.value, PathNotFound)
    assert str(info.value) == "local: input/output error: blob"


def test_ls_verify_and_gc_skip_link_loops(
    cli: Cli, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "registry"
    layout = V2Layout(LocalDriver(store))
    write_image(layout, "app", "1.0")
    repo = store / layout.repository_dir("app")
    os.symlink("self", repo / "self")
    os.symlink("..", repo / "_manifests/up")
    for args in (
        ("ls", str(store)),
        ("verify", "--all", "-l", str(store)),
        ("gc", "--dry-run", "--min-age", "0s", "-l", str(store)),
    ):
        caplog.clear()
        result = cli(*args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        warned = " ".join(r.getMessage() for r in caplog.records)
        assert "skipped docker/registry/v2/repositories/app/self" in warned
    assert "app" in cli("ls", str(store)).stdout


def test_a_write_outlasts_pruners_removing_its_new_directory(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many uploads finishing at once in one repository prune its emptied `_uploads/`
    directory while other writers are making theirs: a write makes its directories again
    as often as they vanish (a pruner at each of its first attempts, here), and only a
    directory that keeps vanishing is an error."""
    driver = LocalDriver(root)
    beneath = driver._beneath
    real_at = beneath.at
    pruned = []

    def at_after_a_pruner(path: str, fn: object, **kwargs: object) -> object:
        def pruner_first(place: object) -> object:
            if len(pruned) < 10:  # the directory just made goes before the file is made
                pruned.append(path)
                raise FileNotFoundError(path)
            return fn(place)  # type: ignore[operator]

        return real_at(path, pruner_first, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(beneath, "at", at_after_a_pruner)
    driver.put("repositories/app/_uploads/u1/startedat", b"now")
    assert len(pruned) == 10
    assert (root / "repositories/app/_uploads/u1/startedat").read_bytes() == b"now"
    pruned.clear()
    monkeypatch.setattr("regtool.storage.local.MAX_MKDIRS", 5)
    with pytest.raises(StorageError, match="keeps vanishing"):
        driver.put("repositories/app/_uploads/u2/startedat", b"now")
