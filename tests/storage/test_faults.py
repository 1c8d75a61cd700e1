"""Faults, for every driver, through `RetryingDriver` as production opens drivers.

Real faults wherever a real part produces them on demand: a TCP proxy in front of sshd and
Swift cuts connections after a chosen number of bytes (`tests/services/tcp_faults.py`), an
HTTP proxy answers chosen Swift requests with 5xx (`tests/services/swift_faults.py`), a
few-MiB tmpfs fills up (`tests/services/tmpfs.py`), and stores hold what trips drivers up
(a file where a directory should be, an immutable directory, a link loop).

Two kinds of fault are caught here as a whole rather than case by case:
- a native error escaping a driver: every call in every awkward state may succeed or
  raise a `RegtoolError` with a one-line message, nothing else;
- a transient fault reported as damage: a dropped connection or a 5xx ends in the right
  bytes (after a retry) or in a `StorageError` that is not `PathNotFound`, never in short
  or wrong content.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from regtool.errors import PathNotFound, RegtoolError, StorageError, StorageFull, TransientError
from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from regtool.storage.retry import Backoff, RetryingDriver
from regtool.storage.swift import SwiftCredentials, SwiftDriver
from tests.services import unavailable
from tests.services.swift_faults import SwiftFaultProxy
from tests.services.tcp_faults import TcpFaultProxy
from tests.services.tmpfs import Tmpfs, small_tmpfs
from tests.storage.conftest import TEST_SEGMENT_SIZE, assert_empty

MiB = 1 << 20


@dataclass
class Faulty:
    """A driver as production wraps it, and the handles that make its faults."""

    driver: RetryingDriver
    tcp: TcpFaultProxy | None = None  # between the driver and its server
    http: SwiftFaultProxy | None = None  # Swift only: behind `tcp`
    disk: Path | None = None  # where the store lies on this machine (local, sftp)
    waits: list[float] = field(default_factory=list)  # backoff waits taken


def _backoff(waits: list[float]) -> Backoff:
    """Production's backoff from a shorter first wait, the jitter fixed, the waits
    recorded. The proxies fault by request and byte counts, not by time; the waits are
    real because a client may need a moment to see that its connection died."""

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    return Backoff(delay=0.1, sleep=sleep, random=lambda: 0.5)


@contextmanager
def _local(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Faulty]:
    waits: list[float] = []
    disk = tmp_path / "root"
    disk.mkdir()
    yield Faulty(RetryingDriver(LocalDriver(disk), _backoff(waits)), disk=disk, waits=waits)


@contextmanager
def _sftp(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Faulty]:
    service = request.getfixturevalue("sshd_service")
    root = service.data_root / f"faults-{uuid.uuid4().hex[:8]}"
    waits: list[float] = []
    with TcpFaultProxy(service.port) as tcp:
        service.trust(tcp.port)
        raw = service.driver(root.name, port=tcp.port, timeout=10.0)
        yield Faulty(RetryingDriver(raw, _backoff(waits)), tcp=tcp, disk=root, waits=waits)


@contextmanager
def _swift(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Faulty]:
    service = request.getfixturevalue("swift_service")
    container = f"faults-{uuid.uuid4().hex[:8]}"
    service.create_container(container)
    waits: list[float] = []
    with SwiftFaultProxy(service.auth_url) as http, TcpFaultProxy(http.port) as tcp:
        credentials = SwiftCredentials(
            auth_url=service.auth_url,
            user=service.user,
            key=service.key,
            storage_url=f"http://127.0.0.1:{tcp.port}/v1/AUTH_test",
        )
        raw = SwiftDriver(credentials, container, segment_size=TEST_SEGMENT_SIZE, timeout=10.0)
        yield Faulty(RetryingDriver(raw, _backoff(waits)), tcp=tcp, http=http, waits=waits)


def _faulty(kinds: list[str]) -> Callable[..., object]:
    """A fixture over the drivers in `kinds`; the store must be empty afterwards."""
    makers = {"local": _local, "sftp": _sftp, "swift": _swift}

    @pytest.fixture(params=kinds)
    def fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Faulty]:
        with makers[request.param](request, tmp_path) as faulty:
            try:
                yield faulty
                if faulty.tcp is not None:
                    faulty.tcp.disarm()
                if faulty.http is not None:
                    faulty.http.clear()
                assert_empty(faulty.driver)
            finally:
                faulty.driver.close()

    return fixture


every = _faulty(["local", "sftp", "swift"])
networked = _faulty(["sftp", "swift"])
on_disk = _faulty(["local", "sftp"])
swift = _faulty(["swift"])
sftp = _faulty(["sftp"])


# -- dropped connections ------------------------------------------------------------------


def test_a_read_resumes_after_the_connection_drops(networked: Faulty) -> None:
    d, tcp = networked.driver, networked.tcp
    assert tcp is not None
    data = os.urandom(3 * MiB)
    d.put("drop/blob", data)
    tcp.cut_after(down=MiB)
    with d.open("drop/blob") as f:
        assert f.read() == data
    assert tcp.cuts == 1
    assert len(networked.waits) >= 1  # it took a retry, not a failed read
    tcp.cut_after(down=MiB // 2)
    with d.open("drop/blob", offset=100_000, length=2 * MiB) as f:
        assert f.read() == data[100_000 : 100_000 + 2 * MiB]
    assert tcp.cuts == 2
    d.delete("drop")


def test_a_read_that_cannot_resume_is_an_access_error(networked: Faulty) -> None:
    d, tcp = networked.driver, networked.tcp
    assert tcp is not None
    data = os.urandom(3 * MiB)
    d.put("gone/blob", data)
    # The first connection dies mid-blob; every later one before a byte has passed.
    tcp.cut_after(down=MiB, then=1, times=None)
    f = d.open("gone/blob")
    got = bytearray()
    with pytest.raises(StorageError) as info:
        while chunk := f.read(64 * 1024):
            got += chunk
    assert not isinstance(info.value, PathNotFound)
    assert "\n" not in str(info.value)
    assert len(got) < len(data) and data.startswith(got)  # a prefix, never wrong bytes
    f.close()
    tcp.disarm()
    assert d.get("gone/blob") == data  # and the driver recovers
    d.delete("gone")


def test_a_swift_segment_cut_mid_upload_is_sent_again(swift: Faulty) -> None:
    # A segment is held in memory until stored: the writer sends it again itself.
    d, tcp = swift.driver, swift.tcp
    assert tcp is not None
    tcp.cut_after(up=MiB)
    chunk = os.urandom(64 * 1024)
    with d.writer("cut/data") as w:
        for _ in range(48):
            w.write(chunk)
        w.commit()
    assert tcp.cuts == 1 and swift.waits  # the cut was met, and waited out
    assert d.get("cut/data") == chunk * 48
    d.delete("cut")


def test_an_sftp_write_cut_mid_stream_fails_and_leaves_nothing(sftp: Faulty) -> None:
    # The bytes written went out on the dead connection and cannot be sent again from
    # here: the caller retries the whole write (see RetryingDriver).
    d, tcp = sftp.driver, sftp.tcp
    assert tcp is not None
    tcp.cut_after(up=MiB)
    w = d.writer("cut/data")
    chunk = os.urandom(64 * 1024)
    with pytest.raises(TransientError):
        for _ in range(48):
            w.write(chunk)
        w.commit()
    with pytest.raises(StorageError):  # what was written is incomplete: never committed
        w.commit()
    w.cancel()
    tcp.disarm()
    assert not d.exists("cut/data")
    # A temp file a dead connection kept the writer from removing is a crash leftover:
    # marked, for gc to collect.
    assert all(e.temporary for e in d.walk("", temporaries=True))
    _reset(d, lambda path: False)
    d.put("cut/after", b"the driver reconnects")
    assert d.get("cut/after") == b"the driver reconnects"
    d.delete("cut")


# -- server errors ------------------------------------------------------------------------


def test_server_errors_are_retried(swift: Faulty) -> None:
    d, http = swift.driver, swift.http
    assert http is not None
    d.put("5xx/file", b"content")
    calls: list[tuple[Callable[[], object], object]] = [
        (lambda: d.get("5xx/file"), b"content"),
        (lambda: d.stat("5xx/file").size, 7),
        (lambda: [e.path for e in d.list("5xx")], ["5xx/file"]),
        (lambda: [e.path for e in d.walk("5xx")], ["5xx/file"]),
        (lambda: d.open("5xx/file", 3).read(), b"tent"),
        (lambda: d.exists("5xx/file"), True),
    ]
    for call, expected in calls:
        http.answer(None, "", 503, times=2)
        swift.waits.clear()
        assert call() == expected
        assert len(swift.waits) == 2
    http.answer("PUT", "", 500)
    d.put("5xx/put", b"written on the second try")
    assert d.get("5xx/put") == b"written on the second try"
    d.delete("5xx")


def test_server_errors_outlasting_the_retries_are_transient(swift: Faulty) -> None:
    d, http = swift.driver, swift.http
    assert http is not None
    d.put("5xx/file", b"content")
    http.answer(None, "", 503, headers={"Retry-After": "0"}, times=100)
    with pytest.raises(TransientError):
        d.get("5xx/file")
    with pytest.raises(TransientError):
        list(d.walk("5xx"))
    http.clear()
    d.delete("5xx")


def test_a_server_error_mid_write_fails_the_writer_and_leaves_nothing(swift: Faulty) -> None:
    # A segment PUT that fails once is sent again (test_swift.py); one that keeps failing
    # fails the writer, which never commits a large object with a hole.
    d, http = swift.driver, swift.http
    assert http is not None
    w = d.writer("5xx/big")
    w.write(os.urandom(TEST_SEGMENT_SIZE * 2))
    http.answer("PUT", "", 503, times=None)
    with pytest.raises(TransientError):
        w.write(os.urandom(TEST_SEGMENT_SIZE))
    assert len(swift.waits) == d.backoff.attempts - 1
    with pytest.raises(StorageError):
        w.commit()
    http.clear()
    w.cancel()
    assert not d.exists("5xx/big")


# -- a full store -------------------------------------------------------------------------


@pytest.fixture(params=["local", "sftp"])
def full(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Driver, Path]]:
    """A driver whose store is a 1 MiB tmpfs."""
    waits: list[float] = []
    if request.param == "local":
        disk = tmp_path / "small"
        with small_tmpfs(disk, MiB):
            yield RetryingDriver(LocalDriver(disk), _backoff(waits)), disk
        return
    service = request.getfixturevalue("sshd_service")
    disk = service.data_root / f"small-{uuid.uuid4().hex[:8]}"
    with small_tmpfs(disk, MiB):
        raw = service.driver(disk.name)
        try:
            yield RetryingDriver(raw, _backoff(waits)), disk
        finally:
            raw.close()


def _on_disk(disk: Path) -> list[str]:
    return sorted(str(p.relative_to(disk)) for p in disk.rglob("*") if not p.is_dir())


def test_a_full_store_refuses_writes_and_keeps_nothing_of_them(
    full: tuple[Driver, Path],
) -> None:
    d, disk = full
    d.put("keep/small", b"kept")
    too_big = os.urandom(2 * MiB)

    def full_error(call: Callable[[], object]) -> StorageError:
        with pytest.raises(StorageError) as info:
            call()
        assert "\n" not in str(info.value)
        if d.name == "local":
            assert isinstance(info.value, StorageFull)
            assert "no space left on device" in str(info.value)
            assert str(disk) in str(info.value)
        return info.value

    def streamed(path: str, append: bool = False) -> None:
        with d.writer(path, append=append) as w:
            for i in range(0, len(too_big), 256 * 1024):
                w.write(too_big[i : i + 256 * 1024])
            w.commit()

    full_error(lambda: streamed("big/data"))
    full_error(lambda: d.put("big/put", too_big))
    full_error(lambda: d.put_if_absent("big/lease", too_big))
    full_error(lambda: streamed("keep/small", append=True))
    assert _on_disk(disk) == ["keep/small"]  # no temp file, no partial content
    assert d.get("keep/small") == b"kept"
    # Full to the last byte: even a small write fails, and leaves nothing.
    Tmpfs(disk).fill()
    full_error(lambda: d.put("tiny/file", b"x" * 10_000))
    assert _on_disk(disk) == ["filler", "keep/small"]
    (disk / "filler").unlink()
    d.put("tiny/file", b"fits again")
    assert d.get("tiny/file") == b"fits again"
    d.delete("tiny")
    d.delete("keep")
    assert _on_disk(disk) == []


# -- awkward stores: only regtool's errors ------------------------------------------------


def _write(d: Driver, path: str, append: bool) -> None:
    w = d.writer(path, append=append)
    try:
        w.write(b"data")
        w.commit()
    finally:
        w.cancel()


CALLS: dict[str, Callable[[Driver, str], object]] = {
    "list": lambda d, p: d.list(p),
    "walk": lambda d, p: list(d.walk(p, temporaries=True)),
    "stat": lambda d, p: d.stat(p),
    "exists": lambda d, p: d.exists(p),
    "get": lambda d, p: d.get(p),
    "open": lambda d, p: d.open(p).read(),
    "open-range": lambda d, p: d.open(p, 1, 2).read(),
    "large_object": lambda d, p: d.large_object(p),
    "put": lambda d, p: d.put(p, b"data"),
    "put_if_absent": lambda d, p: d.put_if_absent(p, b"data"),
    "writer": lambda d, p: _write(d, p, append=False),
    "append": lambda d, p: _write(d, p, append=True),
    "move-from": lambda d, p: d.move(p, "moved/here"),
    "move-to": lambda d, p: d.move("source/file", p),
    "delete": lambda d, p: d.delete(p),
    "delete_many": lambda d, p: d.delete_many([p]),
}
#: Calls that read: where nothing (no file) is at the path, they raise `PathNotFound`.
READS = {"get", "open", "open-range", "stat"}


def _outcome(d: Driver, name: str, path: str) -> BaseException | None:
    try:
        CALLS[name](d, path)
    except RegtoolError as e:
        assert str(e) and "\n" not in str(e), f"{name}({path!r}): {e!r}"
        return e
    except BaseException as e:
        pytest.fail(f"{name}({path!r}) let a native error escape: {type(e).__name__}: {e}")
    return None


def _reset(d: Driver, keep: Callable[[str], bool]) -> set[str]:
    """Delete everything but what `keep` accepts, in one `delete_many` (the segments of a
    Swift large object are listed, so they go too); returns what is kept."""
    listed = {e.path for e in d.walk("", temporaries=True)}
    report = d.delete_many(sorted(p for p in listed if not keep(p)))
    assert not report.failed, report.failed
    return {p for p in listed if keep(p)}


SETUP = {"afile": b"a file", "adir/inside": b"in a directory", "source/file": b"source"}


def test_paths_below_a_file_and_a_directory_as_a_file(every: Faulty) -> None:
    d = every.driver
    kept: set[str] = set()
    for path in ("afile/below", "afile/below/deeper", "adir"):
        for name in CALLS:
            for missing in SETUP.keys() - kept:
                d.put(missing, SETUP[missing])
            error = _outcome(d, name, path)
            if name in READS and path != "adir":
                assert isinstance(error, PathNotFound), f"{name}({path!r}): {error!r}"
            if name == "delete_many":
                assert error is None
            if not (name.startswith(("move", "delete")) or path == "adir"):
                assert d.get("afile") == b"a file"  # nothing written over what was there
            kept = _reset(d, SETUP.__contains__)
    d.delete_many(sorted(kept))


@contextmanager
def _immutable(directory: Path) -> Iterator[None]:
    """`chattr +i`: not even root may add, remove or rename in the directory."""
    done = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, text=True)
    if done.returncode != 0:
        unavailable(f"chattr +i failed: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def test_an_immutable_directory_and_a_link_loop(on_disk: Faulty) -> None:
    d, disk = on_disk.driver, on_disk.disk
    assert disk is not None
    d.put("locked/file", b"locked")
    with _immutable(disk / "locked"), _immutable(disk / "locked" / "file"):
        for path in ("locked/file", "locked/new", "locked", "loop", "loop/below"):
            for name in CALLS:
                if not (disk / "loop").is_symlink():
                    os.symlink("loop", disk / "loop")
                d.put("source/file", b"source")
                _outcome(d, name, path)
                _reset(d, lambda path: path.startswith("locked/"))
                assert d.get("locked/file") == b"locked"
    (disk / "loop").unlink()
    d.delete("locked")


# -- links and special files in a store on disk --------------------------------------------


def _files(d: Driver, prefix: str = "") -> set[str]:
    return {e.path for e in d.walk(prefix)}


def test_links_are_followed_inside_the_store_never_round_and_never_out(
    on_disk: Faulty, tmp_path: Path
) -> None:
    d, disk = on_disk.driver, on_disk.disk
    assert disk is not None
    for path in ("a/file-a", "a/sub/deep", "b/file-b"):
        d.put(path, b"x")
    os.symlink("self", disk / "a/self")  # a loop of one link
    os.symlink("..", disk / "a/sub/up")  # back into a directory that holds it
    os.symlink("../b", disk / "a/to-b")
    os.symlink("../a", disk / "b/to-a")  # a/to-b/to-a would be a/ again
    os.symlink("file-a", disk / "a/same")  # a link to a file is a file
    os.symlink("nowhere", disk / "a/dangling")
    os.mkfifo(disk / "a/fifo")
    assert _files(d) == {
        "a/file-a",
        "a/same",
        "a/sub/deep",
        "a/to-b/file-b",
        "b/file-b",
        "b/to-a/file-a",
        "b/to-a/same",
        "b/to-a/sub/deep",
    }
    assert {(e.path, e.is_dir) for e in d.list("a/sub")} == {("a/sub/deep", False)}
    assert {e.path for e in d.list("a") if e.is_dir} == {"a/sub", "a/to-b"}
    assert d.get("a/same") == b"x"
    # A link out of the store: refused, naming it, whichever call meets it.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not the store's")
    os.symlink(outside, disk / "b/out")
    for call in (lambda: _files(d), lambda: d.list("b")):
        with pytest.raises(StorageError, match=r"b/out is a symbolic link to .*outside the store"):
            call()
    # Deleting a directory removes links, never what they lead to.
    d.delete("a")
    assert (outside / "secret").exists() and (disk / "b/file-b").exists()
    d.delete("b")
    assert (outside / "secret").exists() and not (disk / "b").exists()
