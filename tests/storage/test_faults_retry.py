"""`RetryingDriver` and its `Backoff`, over a real local directory with faults injected at
chosen calls and offsets: which call fails, when, with what `Retry-After`, and whether an
answer was lost after the call took effect are things no real server does on demand.
Waits are recorded instead of slept, and the jitter is fixed, so every run is the same.
The same behaviour against real sshd and Swift faults is in test_faults.py."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from regtool.errors import PathNotFound, StorageError, TransientError
from regtool.storage.base import DeleteReport, Driver, Entry, Prune, Writer
from regtool.storage.local import LocalDriver
from regtool.storage.retry import Backoff, RetryingDriver


def fault(retry_after: float | None = None) -> TransientError:
    return TransientError("connection reset", driver="test", retry_after=retry_after)


class _DroppingReader(io.RawIOBase):
    """A reader that fails with a fault once it reaches `drop_at` (bytes from its start)."""

    def __init__(self, inner: BinaryIO, drop_at: int | None):
        self._inner, self._left = inner, drop_at

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left is not None and self._left <= 0:
            raise fault()
        want = len(buffer) if self._left is None else min(len(buffer), self._left)
        data = self._inner.read(want)
        buffer[: len(data)] = data
        if self._left is not None:
            self._left -= len(data)
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


class Scripted(Driver):
    """A real driver with faults on cue.

    `before[name]`: faults raised by the next calls of `name`, before they run;
    `after[name]`: faults raised by the next calls after they ran (an answer lost);
    `drops`: for each `open`, where its reader fails (None: it does not).
    """

    def __init__(self, inner: Driver):
        self.inner = inner
        self.before: dict[str, list[TransientError]] = {}
        self.after: dict[str, list[TransientError]] = {}
        self.drops: list[int | None] = []
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def _run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((name, args))
        if self.before.get(name):
            raise self.before[name].pop(0)
        result = getattr(self.inner, name)(*args, **kwargs)
        if self.after.get(name):
            raise self.after[name].pop(0)
        return result

    def list(self, prefix: str = "") -> list[Entry]:
        return self._run("list", prefix)  # type: ignore[no-any-return]

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        self.calls.append(("walk", (prefix,)))
        if self.before.get("walk"):
            raise self.before["walk"].pop(0)
        for i, entry in enumerate(self.inner.walk(prefix, temporaries=temporaries, prune=prune)):
            if i == 1 and self.after.get("walk"):
                raise self.after["walk"].pop(0)
            yield entry

    def stat(self, path: str) -> Entry:
        return self._run("stat", path)  # type: ignore[no-any-return]

    def get(self, path: str) -> bytes:
        return self._run("get", path)  # type: ignore[no-any-return]

    def get_many(self, paths: Iterable[str], jobs: int = 16) -> dict[str, bytes | Exception]:
        return self._run("get_many", list(paths), jobs)  # type: ignore[no-any-return]

    def put(self, path: str, data: bytes) -> None:
        self._run("put", path, data)

    def put_if_absent(self, path: str, data: bytes) -> bool:
        return self._run("put_if_absent", path, data)  # type: ignore[no-any-return]

    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        reader = self._run("open", path, offset, length)
        drop_at = self.drops.pop(0) if self.drops else None
        return io.BufferedReader(_DroppingReader(reader, drop_at))

    def writer(self, path: str, append: bool = False) -> Writer:
        return self._run("writer", path, append)  # type: ignore[no-any-return]

    def move(self, src: str, dst: str) -> None:
        self._run("move", src, dst)

    def delete(self, path: str) -> None:
        self._run("delete", path)

    def delete_many(self, paths: Iterable[str]) -> DeleteReport:
        return self._run("delete_many", list(paths))  # type: ignore[no-any-return]

    def create_root(self) -> None:
        self._run("create_root")

    def root_exists(self) -> bool:
        return self._run("root_exists")  # type: ignore[no-any-return]


@pytest.fixture
def scripted(tmp_path: Path) -> Scripted:
    return Scripted(LocalDriver(tmp_path / "root"))


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def retrying(scripted: Scripted, waits: list[float]) -> RetryingDriver:
    return RetryingDriver(scripted, Backoff(sleep=waits.append, random=lambda: 1.0))


# -- the backoff --------------------------------------------------------------------------


def test_waits_double_with_equal_jitter_up_to_the_cap() -> None:
    taken: list[float] = []
    low = Backoff(attempts=10, delay=1, max_delay=5, sleep=taken.append, random=lambda: 0.0)
    for failures in range(1, 6):
        low.pause(fault(), failures, 0.0)
    assert taken == [0.5, 1.0, 2.0, 2.5, 2.5]  # half of 1, 2, 4, then of the 5 s cap
    taken.clear()
    high = Backoff(attempts=10, delay=1, max_delay=5, sleep=taken.append, random=lambda: 1.0)
    for failures in range(1, 6):
        high.pause(fault(), failures, 0.0)
    assert taken == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_servers_retry_after_is_honoured_with_a_little_jitter() -> None:
    taken: list[float] = []
    for r in (0.0, 0.5, 1.0):
        Backoff(sleep=taken.append, random=lambda r=r: r).pause(fault(retry_after=8), 1, 0.0)
    assert taken == [8.0, 9.0, 10.0]  # never sooner than asked, at most a quarter later


def test_no_wait_past_the_budget_and_no_attempt_past_the_limit() -> None:
    taken: list[float] = []
    backoff = Backoff(attempts=4, budget=60, sleep=taken.append, random=lambda: 0.0)
    error = fault(retry_after=61)
    with pytest.raises(TransientError) as info:
        backoff.pause(error, 1, 0.0)
    assert info.value is error and taken == []  # given back at once, not after a minute
    with pytest.raises(TransientError):
        backoff.pause(fault(retry_after=30), 2, 40.0)  # 40 s waited, 30 more is too much
    assert backoff.pause(fault(retry_after=20), 2, 40.0) == 20.0
    with pytest.raises(TransientError):
        backoff.pause(fault(), 4, 0.0)  # the fourth failure of four attempts
    assert taken == [20.0]


# -- calls --------------------------------------------------------------------------------


def test_calls_are_retried_as_the_backoff_says(
    scripted: Scripted, retrying: RetryingDriver, waits: list[float]
) -> None:
    retrying.put("f", b"content")
    scripted.before["get"] = [fault(retry_after=3), fault()]
    assert retrying.get("f") == b"content"
    assert waits == [3.75, 0.4]  # the server's wait and a quarter; then twice 0.2
    waits.clear()
    scripted.before["stat"] = [fault() for _ in range(4)]
    with pytest.raises(TransientError):
        retrying.stat("f")
    assert len(waits) == 3  # four attempts in all
    scripted.before["list"] = [fault()]
    assert [e.path for e in retrying.list("")] == ["f"]


def test_other_errors_are_not_retried(scripted: Scripted, retrying: RetryingDriver) -> None:
    with pytest.raises(PathNotFound):
        retrying.get("missing")
    assert [name for name, _ in scripted.calls] == ["get"]


def test_a_walk_is_retried_until_its_first_entry(
    scripted: Scripted, retrying: RetryingDriver
) -> None:
    retrying.put("w/a", b"a")
    retrying.put("w/b", b"b")
    scripted.before["walk"] = [fault()]
    assert {e.path for e in retrying.walk("w")} == {"w/a", "w/b"}
    scripted.after["walk"] = [fault()]  # after the first entry: entries cannot be unsaid
    with pytest.raises(TransientError):
        list(retrying.walk("w"))


def test_writers_are_not_retried(scripted: Scripted, retrying: RetryingDriver) -> None:
    scripted.before["writer"] = [fault()]
    w = retrying.writer("up/data")  # opening one is
    w.write(b"data")
    w.commit()
    scripted.before["delete_many"] = [fault()]
    with pytest.raises(TransientError):
        retrying.delete_many(["up/data"])
    assert retrying.get("up/data") == b"data"


def test_delete_many_tries_the_paths_that_met_a_transient_fault_again(
    scripted: Scripted,
    retrying: RetryingDriver,
    waits: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for path in ("d/a", "d/b", "d/c"):
        retrying.put(path, b"x")
    sent: list[list[str]] = []
    real = scripted.inner.delete_many

    def flaky(paths: Iterable[str]) -> DeleteReport:
        paths = list(paths)
        sent.append(paths)
        if len(sent) > 2:
            return real(paths)
        report = real([p for p in paths if p not in ("d/b", "d/c")])
        report.fail("d/b", fault(retry_after=2 * len(sent)))  # throttled, twice
        if "d/c" in paths:
            report.fail("d/c", StorageError("permission denied", driver="test"))  # for good
        return report

    monkeypatch.setattr(scripted.inner, "delete_many", flaky)
    report = retrying.delete_many(["d/a", "d/b", "d/c"])
    assert sent == [["d/a", "d/b", "d/c"], ["d/b"], ["d/b"]]  # only what met a fault
    assert sorted(report.deleted) == ["d/a", "d/b"] and not report.transient
    assert report.failed == {"d/c": "test: permission denied"}
    assert waits == [2.5, 5.0]  # the server's waits, and a quarter
    monkeypatch.setattr(scripted.inner, "delete_many", lambda paths: _throttled(list(paths)))
    waits.clear()
    report = retrying.delete_many(["d/c"])
    assert list(report.transient) == ["d/c"] and len(waits) == 3  # four attempts, then given


def test_get_many_reads_the_files_that_met_a_transient_fault_again(
    scripted: Scripted,
    retrying: RetryingDriver,
    waits: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for path in ("g/a", "g/b", "g/c"):
        retrying.put(path, path.encode())
    sent: list[list[str]] = []
    real = scripted.inner.get_many

    def flaky(paths: Iterable[str], jobs: int = 16) -> dict[str, bytes | Exception]:
        paths = list(paths)
        sent.append(paths)
        if len(sent) == 1:
            raise fault()  # the whole batch: the connection dropped
        found = real(paths, jobs)
        if len(sent) == 2:
            found["g/b"] = fault(retry_after=3)
        found["g/c"] = StorageError("permission denied", driver="test")  # for good
        return found

    monkeypatch.setattr(scripted.inner, "get_many", flaky)
    found = retrying.get_many(["g/a", "g/b", "g/c"])
    assert sent == [["g/a", "g/b", "g/c"], ["g/a", "g/b", "g/c"], ["g/b"]]
    assert found["g/a"] == b"g/a" and found["g/b"] == b"g/b" and list(found)[2] == "g/c"
    assert isinstance(found["g/c"], StorageError) and "permission" in str(found["g/c"])
    assert waits == [0.2, 3.75]  # a backoff's, then the server's wait and a quarter
    monkeypatch.setattr(
        scripted.inner, "get_many", lambda paths, jobs=16: dict.fromkeys(paths, fault())
    )
    waits.clear()
    found = retrying.get_many(["g/a"])  # given up: the path's fault, not raised
    assert isinstance(found["g/a"], TransientError) and len(waits) == 3
    for path in ("g/a", "g/b", "g/c"):
        retrying.delete(path)


def _throttled(paths: list[str]) -> DeleteReport:
    report = DeleteReport()
    for path in paths:
        report.fail(path, fault())
    return report


def test_a_call_whose_answer_was_lost_is_not_reported_as_failed(
    scripted: Scripted, retrying: RetryingDriver
) -> None:
    retrying.put("lost/src", b"moved")
    scripted.after["move"] = [fault()]  # moved, but the answer never came
    retrying.move("lost/src", "lost/dst")
    assert retrying.get("lost/dst") == b"moved"
    scripted.after["delete"] = [fault()]
    retrying.delete("lost/dst")
    assert not retrying.exists("lost/dst")
    scripted.after["put_if_absent"] = [fault()]
    assert retrying.put_if_absent("lost/lease", b"token-1") is True
    # Someone else's file, found by the retry of a lost answer: not ours.
    scripted.before["put_if_absent"] = [fault()]
    assert retrying.put_if_absent("lost/lease", b"token-2") is False
    # A move whose source is gone and whose target is not there failed for real.
    scripted.before["move"] = [fault()]
    with pytest.raises(PathNotFound):
        retrying.move("lost/none", "lost/nowhere")


# -- resuming reads -----------------------------------------------------------------------


def test_a_read_resumes_where_it_dropped(
    scripted: Scripted, retrying: RetryingDriver, waits: list[float]
) -> None:
    data = os.urandom(100_000)
    retrying.put("blob", data)
    scripted.drops = [30_000, 50_000]  # the first stream fails at 30,000, the next 50,000 on
    with retrying.open("blob", offset=1000, length=90_000) as f:
        assert f.read() == data[1000:91_000]
    opens = [args for name, args in scripted.calls if name == "open"]
    assert len(opens) == 3 and len(waits) == 2
    # Each re-open starts at the first byte not yet returned, and ends where asked.
    assert [offset + length for _, offset, length in opens] == [91_000] * 3
    assert 1000 < opens[1][1] <= 31_000 < opens[2][1] <= 81_000
    scripted.drops = [10_000]
    with retrying.open("blob", offset=95_000) as f:  # to the end: no length to carry
        assert f.read() == data[95_000:]
    scripted.drops = [5]
    with retrying.open("blob") as f:
        buffer = bytearray(len(data))
        view, got = memoryview(buffer), 0
        while n := f.readinto(view[got:]):
            got += n
        assert bytes(buffer[:got]) == data


def test_a_read_that_keeps_dropping_without_progress_gives_up(
    scripted: Scripted, retrying: RetryingDriver, waits: list[float]
) -> None:
    data = os.urandom(10_000)
    retrying.put("blob", data)
    scripted.drops = [6000] + [0] * 10  # then every new stream fails before a byte
    got = bytearray()
    with retrying.open("blob") as f, pytest.raises(TransientError):
        while chunk := f.read(1000):
            got += chunk
    assert bytes(got) == data[:6000]  # what it gave is a prefix, never wrong bytes
    assert len(waits) == 3  # four faults in a row: the attempts of one call


def test_progress_between_drops_keeps_a_read_going(
    scripted: Scripted, retrying: RetryingDriver
) -> None:
    data = os.urandom(20_000)
    retrying.put("blob", data)
    scripted.drops = [1000] * 30  # thirty drops, far more than four attempts, each after
    with retrying.open("blob") as f:  # a thousand new bytes
        assert f.read() == data


def test_a_file_gone_while_resuming_is_not_found(
    scripted: Scripted, retrying: RetryingDriver
) -> None:
    retrying.put("blob", b"x" * 10_000)
    scripted.drops = [5000]
    f = retrying.open("blob")
    assert len(f.read(5000)) == 5000
    retrying.delete("blob")
    with pytest.raises(StorageError) as info:
        f.read()
    assert isinstance(info.value, PathNotFound)
    f.close()
