"""The SFTP driver's `get`: a small file in two round trips, counted, not timed; a
larger one, or one that changes while read, streamed instead."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regtool.errors import PathNotFound
from regtool.storage.sftp import SftpDriver
from regtool.storage.sftp import driver as sftp_driver
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
    data = os.urandom(sftp_driver.SMALL + 1)
    (disk / "large").write_bytes(data)
    assert driver.get("large") == data


def test_a_file_that_grows_while_read_is_read_whole(
    store: tuple[SftpDriver, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    driver, disk = store
    (disk / "growing").write_bytes(b"first part")
    read_whole = sftp_driver.read_whole

    def growing(*args: Any) -> bytes | None:
        with open(disk / "growing", "ab") as f:  # after its STAT, before its READs
            f.write(b", and more")
        return read_whole(*args)

    monkeypatch.setattr(sftp_driver, "read_whole", growing)
    assert driver.get("growing") == b"first part, and more"


def test_a_directory_or_nothing_is_not_found(store: tuple[SftpDriver, Path]) -> None:
    driver, disk = store
    (disk / "dir").mkdir()
    for path in ("dir", "absent", "absent/below"):
        with pytest.raises(PathNotFound):
            driver.get(path)
    (disk / "dir" / "f").write_bytes(b"still usable")
    assert driver.get("dir/f") == b"still usable"
