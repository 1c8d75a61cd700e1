"""The SFTP driver's `get`: a small file in two round trips, counted, not timed; a
larger one, or one that changes while read, streamed instead."""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from regtool.errors import PathNotFound
from regtool.storage.sftp import SftpDriver
from regtool.storage.sftp import reads as sftp_reads
from regtool.storage.sftp.protocol import Pipeline, SftpChannel
from tests.services.sshd import SshdService

pytestmark = pytest.mark.sftp


@pytest.fixture
def store(sshd_service: SshdService) -> Iterator[tuple[SftpDriver, Path]]:
    name = f"reads-{uuid.uuid4().hex[:8]}"
    driver = sshd_service.driver(name)
    try:
        yield driver, sshd_service.data_root / name
    finally:
        driver.close()
        shutil.rmtree(sshd_service.data_root / name, ignore_errors=True)


@pytest.fixture
def pipelines(monkeypatch: pytest.MonkeyPatch) -> list[Pipeline]:
    """Every pipeline made from now on, to count round trips."""
    made: list[Pipeline] = []
    pipeline = SftpChannel.pipeline

    def recording(self: SftpChannel, handle: bytes | None = None) -> Pipeline:
        made.append(pipeline(self, handle))
        return made[-1]

    monkeypatch.setattr(SftpChannel, "pipeline", recording)
    return made


def test_a_small_file_takes_two_round_trips(
    store: tuple[SftpDriver, Path], pipelines: list[Pipeline]
) -> None:
    driver, disk = store
    chunk = 256 * 1024  # what OpenSSH allows, up to MAX_CHUNK
    sizes = (0, 71, chunk - 1, chunk, chunk + 1, 3 * chunk)
    for size in sizes:
        data = os.urandom(size)
        (disk / f"f{size}").write_bytes(data)
        assert driver.list("") is not None  # the root's real path is known from here on
        pipelines.clear()
        assert driver.get(f"f{size}") == data
        assert sum(p.round_trips for p in pipelines) == 2, size


def test_a_large_file_is_streamed(store: tuple[SftpDriver, Path]) -> None:
    driver, disk = store
    data = os.urandom(sftp_reads.SMALL + 1)
    (disk / "large").write_bytes(data)
    assert driver.get("large") == data


def test_a_file_that_grows_while_read_is_read_whole(
    store: tuple[SftpDriver, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    driver, disk = store
    (disk / "growing").write_bytes(b"first part")
    opened = sftp_reads.ManyReads._opened

    grown: list[str] = []

    def growing(self: sftp_reads.ManyReads, f: Any) -> None:
        if not grown:  # after its STAT, before its READs, once
            grown.append(f.path)
            with open(disk / "growing", "ab") as out:
                out.write(b", and more")
        opened(self, f)

    monkeypatch.setattr(sftp_reads.ManyReads, "_opened", growing)
    assert driver.get("growing") == b"first part, and more" and grown == ["growing"]


def test_reads_asked_for_at_once_go_out_together(
    store: tuple[SftpDriver, Path], pipelines: list[Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    driver, disk = store
    files = {f"f{n}": f"file {n}".encode() for n in range(12)}
    for path, data in files.items():
        (disk / path).write_bytes(data)
    assert driver.list("") is not None  # the root's real path is known from here on
    pipelines.clear()
    first_batch, go = threading.Event(), threading.Event()
    run = sftp_reads.ManyReads.run

    def held(self: sftp_reads.ManyReads) -> Any:
        if not first_batch.is_set():  # the first batch waits until the others asked
            first_batch.set()
            assert go.wait(20)
        return run(self)

    monkeypatch.setattr(sftp_reads.ManyReads, "run", held)
    with ThreadPoolExecutor(len(files)) as pool:
        first = pool.submit(driver.get, "f0")
        assert first_batch.wait(20)
        rest = {p: pool.submit(driver.get, p) for p in files if p != "f0"}
        batches = driver._batches
        deadline = time.monotonic() + 20
        while len(batches._waiting) < len(rest) and time.monotonic() < deadline:
            time.sleep(0.01)  # until every other thread waits for the next batch
        go.set()
        got = {"f0": first.result(), **{p: f.result() for p, f in rest.items()}}
    assert got == files
    assert list(batches.sizes) == [1, len(rest)]  # the first alone, then all the others
    assert [p.round_trips for p in pipelines] == [2, 2]  # two batches, two round trips each


def test_a_directory_or_nothing_is_not_found(store: tuple[SftpDriver, Path]) -> None:
    driver, disk = store
    (disk / "dir").mkdir()
    for path in ("dir", "absent", "absent/below"):
        with pytest.raises(PathNotFound):
            driver.get(path)
    (disk / "dir" / "f").write_bytes(b"still usable")
    assert driver.get("dir/f") == b"still usable"


def test_many_files_take_two_round_trips_together(
    store: tuple[SftpDriver, Path], pipelines: list[Pipeline]
) -> None:
    driver, disk = store
    chunk = 256 * 1024
    wanted = {}
    for n, size in enumerate((0, 71, chunk + 1, *([71] * 297))):
        wanted[f"d{n % 7}/f{n}"] = os.urandom(size)
        (disk / f"d{n % 7}").mkdir(exist_ok=True)
        (disk / f"d{n % 7}" / f"f{n}").write_bytes(wanted[f"d{n % 7}/f{n}"])
    assert driver.list("") is not None  # the root's real path is known from here on
    pipelines.clear()
    assert driver.get_many(wanted) == wanted
    (pipe,) = pipelines  # one channel
    assert pipe.round_trips == 2  # REALPATH, OPEN and STAT; then READs and CLOSE


def test_many_reads_keep_within_the_bound(
    store: tuple[SftpDriver, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    driver, disk = store
    wanted = {f"f{n}": f"file {n}".encode() for n in range(50)}
    for path, data in wanted.items():
        (disk / path).write_bytes(data)
    most = [0]
    send = Pipeline.send

    def counting(self: Pipeline, *args: Any, **kwargs: Any) -> None:
        send(self, *args, **kwargs)
        most[0] = max(most[0], self.client.outstanding)

    monkeypatch.setattr(Pipeline, "send", counting)
    monkeypatch.setattr(sftp_reads, "IN_FLIGHT", 8)
    assert driver.get_many(wanted) == wanted
    assert 6 <= most[0] <= 8


def test_a_file_that_changes_in_a_batch_is_read_alone(
    store: tuple[SftpDriver, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    driver, disk = store
    (disk / "growing").write_bytes(b"first part")
    (disk / "still").write_bytes(b"unchanged")
    opened = sftp_reads.ManyReads._opened

    grown: list[str] = []

    def growing(self: sftp_reads.ManyReads, f: Any) -> None:
        if f.path == "growing" and not grown:  # after its STAT, before its READs, once
            grown.append(f.path)
            with open(disk / "growing", "ab") as out:
                out.write(b", and more")
        opened(self, f)

    monkeypatch.setattr(sftp_reads.ManyReads, "_opened", growing)
    found = driver.get_many(["growing", "still"])
    assert found == {"growing": b"first part, and more", "still": b"unchanged"}
