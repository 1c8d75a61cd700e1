"""A walk whose SSH connection is lost goes on where it was, on a new connection, with the
retry wrapper's backoff: it yields exactly what a walk without the loss yields. The
connection runs through a TCP proxy the test cuts at chosen points of the walk (after so
many entries handed out, so many READDIR answers taken, so many directories listed), so
every run cuts at the same place."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from regtool.errors import TransientError
from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from regtool.storage.retry import Backoff, RetryingDriver
from regtool.storage.sftp import walk as sftp_walk
from tests.services.sshd import SshdService
from tests.services.tcp_faults import TcpFaultProxy, assert_said_lost

pytestmark = pytest.mark.sftp


@pytest.fixture
def disk(sshd_service: SshdService) -> Iterator[Path]:
    """A tree of 3 levels, 8 wide, files at each level, a directory of 300 entries (more
    than one READDIR answer) and a link to a directory (resolved with two requests more)."""
    root = sshd_service.data_root / f"walkdrop-{uuid.uuid4().hex[:8]}"
    for i in range(8):
        for j in range(8):
            leaf = root / f"a{i}" / f"b{j}" / "c"
            leaf.mkdir(parents=True)
            (leaf / "link").write_bytes(f"{i}{j}".encode())
            (root / f"a{i}" / f"b{j}" / "data").write_bytes(b"d" * j)
        (root / f"a{i}" / "top").write_bytes(b"t" * i)
    (root / "many").mkdir()
    for k in range(300):
        (root / "many" / f"{k:03d}").write_bytes(b"m")
    os.symlink("a3", root / "linked")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Sleeps:
    """A backoff's sleep that only counts: the waits cost no time."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def _driver(
    service: SshdService, proxy: TcpFaultProxy, disk: Path, sleeps: Sleeps, attempts: int = 4
) -> RetryingDriver:
    sftp = service.driver(disk.name, port=proxy.port, timeout=10.0)
    return RetryingDriver(sftp, Backoff(attempts=attempts, sleep=sleeps))


def _expected(disk: Path, prefix: str = "", at_least: int = 400) -> list[str]:
    paths = sorted(e.path for e in LocalDriver(disk).walk(prefix))
    assert len(paths) > at_least  # the comparison is not between two small walks
    return paths


def _cut_after(
    monkeypatch: pytest.MonkeyPatch, method: str, nth: set[int], cut: Callable[[], None]
) -> list[int]:
    """Call `cut` after the n-th call (for each n in `nth`, counted over every walk) of
    `TreeWalk.<method>`; returns the list of calls made so far (its length is the count)."""
    calls: list[int] = []
    original = getattr(sftp_walk.TreeWalk, method)

    def hooked(self: sftp_walk.TreeWalk, *args: Any) -> Any:
        result = original(self, *args)
        calls.append(1)
        if len(calls) in nth:
            cut()
        return result

    monkeypatch.setattr(sftp_walk.TreeWalk, method, hooked)
    return calls


def _live(proxy: TcpFaultProxy) -> bool:
    """Whether the connection through `proxy` is one not cut yet (one at a time here)."""
    return proxy.connections > proxy.cuts


def _walk(
    d: Driver, prefix: str = "", cut_at: dict[int, Callable[[], None]] | None = None
) -> list[str]:
    """The walk's paths in the order yielded; `cut_at[n]()` runs once n were handed out."""
    seen: list[str] = []
    for entry in d.walk(prefix):
        seen.append(entry.path)
        if cut_at and len(seen) in cut_at:
            cut_at[len(seen)]()
    return seen


def test_a_walk_cut_between_entries_goes_on_without_repeating_or_missing_one(
    sshd_service: SshdService, proxy: TcpFaultProxy, disk: Path, sleeps: Sleeps
) -> None:
    expected = _expected(disk)
    seen: list[str] = []
    with _driver(sshd_service, proxy, disk, sleeps) as d:
        for entry in d.walk(""):
            seen.append(entry.path)
            # cut after the first entry, and after the hundredth or the first one after
            # it handed out while the walk is on its new connection
            if len(seen) == 1 or (len(seen) >= 100 and proxy.cuts < 2 and _live(proxy)):
                proxy.cut_all()
    assert sorted(seen) == expected  # each once
    # (one wait before each new connection; a walk cut as it ends may need none)
    assert proxy.cuts >= 1 and len(sleeps.waits) == proxy.connections - 1 >= 1


def test_a_walk_cut_again_and_again_goes_on_with_a_budget_per_stall(
    sshd_service: SshdService,
    proxy: TcpFaultProxy,
    disk: Path,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
    walks: list[sftp_walk.TreeWalk],
) -> None:
    # Two attempts per stall, and the connection cut three times, each time as soon as
    # a directory was listed on it (not from what the lost one had sent before): the
    # waits start again after each, and the walk ends with every entry once. Each level
    # of the tree is asked for once the one above is listed, so each of the first three
    # connections has directories to list, whatever the replies that came in before.
    expected = _expected(disk)
    original = sftp_walk.TreeWalk._list

    def list_then_cut(self: sftp_walk.TreeWalk, reading: Any) -> None:
        original(self, reading)
        if proxy.cuts < 3 and _live(proxy):
            proxy.cut_all()

    monkeypatch.setattr(sftp_walk.TreeWalk, "_list", list_then_cut)
    with _driver(sshd_service, proxy, disk, sleeps, attempts=2) as d:
        assert sorted(_walk(d)) == expected
    assert proxy.cuts == 3 and proxy.connections == 4 and len(sleeps.waits) == 3
    assert len(walks) == 1


@pytest.mark.parametrize("nth", [1, 2, 7, 30, 61, 80])
def test_a_walk_cut_with_directories_half_read_reads_them_again(
    sshd_service: SshdService,
    proxy: TcpFaultProxy,
    disk: Path,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
    walks: list[sftp_walk.TreeWalk],
    nth: int,
) -> None:
    # The cut lands after the nth READDIR answer taken: directories opened and partly
    # read, links being resolved, CLOSEs unanswered, on the old connection.
    expected = _expected(disk)
    with _driver(sshd_service, proxy, disk, sleeps) as d:
        reads = _cut_after(monkeypatch, "_read", {nth}, proxy.cut_all)
        seen = _walk(d)
    assert sorted(seen) == expected
    assert len(reads) > nth and proxy.cuts == 1 and proxy.connections == 2
    assert len(walks) == 1  # not started again from the top
    assert len(sleeps.waits) == 1  # one wait, then the walk went on


def test_a_walk_of_a_prefix_cut_before_its_top_is_read_goes_on(
    sshd_service: SshdService,
    proxy: TcpFaultProxy,
    disk: Path,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
    walks: list[sftp_walk.TreeWalk],
) -> None:
    # The top's REALPATH and OPENDIR are answered, its READDIRs are not: the top is
    # opened again, its place inside the root checked again.
    expected = _expected(disk, "a2", at_least=10)
    with _driver(sshd_service, proxy, disk, sleeps) as d:
        _cut_after(monkeypatch, "_opened", {1}, proxy.cut_all)
        assert sorted(_walk(d, "a2")) == expected
    assert proxy.cuts == 1 and len(walks) == 1


def test_a_read_during_the_walk_that_meets_the_cut_reconnects_and_the_walk_goes_on(
    sshd_service: SshdService, proxy: TcpFaultProxy, disk: Path, sleeps: Sleeps
) -> None:
    # The caller reads on the walk's channel (lent to it) while the walk has requests in
    # flight: the read meets the lost connection first, retries on a new one, and the
    # walk finds the loss itself after.
    expected = _expected(disk)
    got: list[bytes] = []
    with _driver(sshd_service, proxy, disk, sleeps) as d:

        def cut_and_read() -> None:
            proxy.cut_all()
            got.append(d.get("a5/b6/c/link"))

        seen = _walk(d, cut_at={40: cut_and_read})
    assert got == [b"56"]
    assert sorted(seen) == expected


def test_a_walk_gives_up_after_the_attempts_with_one_line_naming_the_host(
    sshd_service: SshdService,
    proxy: TcpFaultProxy,
    disk: Path,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = _driver(sshd_service, proxy, disk, sleeps, attempts=3)
    _cut_after(monkeypatch, "_list", {5}, proxy.close)  # cut, and refuse new connections
    seen: list[str] = []
    with pytest.raises(TransientError) as info:
        for entry in d.walk(""):
            seen.append(entry.path)
    d.close()
    assert_said_lost(str(info.value), proxy.port)
    assert f"{sshd_service.username}@127.0.0.1:{proxy.port}" in str(info.value)
    assert len(sleeps.waits) == 2  # 3 attempts: the walk's own, not again the wrapper's
    assert len(seen) == len(set(seen))


def test_a_walk_lost_before_its_first_entry_is_not_retried_again_by_the_wrapper(
    sshd_service: SshdService,
    proxy: TcpFaultProxy,
    disk: Path,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The driver's own attempts are the walk's attempts: the wrapper, which starts a walk
    # of another driver again until its first entry, does not multiply them.
    d = _driver(sshd_service, proxy, disk, sleeps, attempts=3)
    _cut_after(monkeypatch, "_opened", {1}, proxy.close)
    with pytest.raises(TransientError) as info:
        _walk(d)
    d.close()
    assert_said_lost(str(info.value), proxy.port)
    assert len(sleeps.waits) == 2


def test_without_a_backoff_a_lost_walk_is_one_transient_error_in_words(
    sshd_service: SshdService, proxy: TcpFaultProxy, disk: Path
) -> None:
    sftp = sshd_service.driver(disk.name, port=proxy.port, timeout=10.0)
    try:
        with pytest.raises(TransientError) as info:
            _walk(sftp, cut_at={50: proxy.cut_all})
    finally:
        sftp.close()
    assert_said_lost(str(info.value), proxy.port)
