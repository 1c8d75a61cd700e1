"""The `driver` fixture: every conformance test runs against local, sftp and swift, each
wrapped in `RetryingDriver` as `Location.open()` wraps it in production."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from regtool.storage.retry import RetryingDriver
from regtool.storage.sftp import driver as sftp_driver
from regtool.storage.sftp import walk as sftp_walk

#: Small segments so that "an object over two segments" stays cheap on Swift.
TEST_SEGMENT_SIZE = 64 * 1024


@pytest.fixture
def segment_size() -> int:
    return TEST_SEGMENT_SIZE


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    return LocalDriver(tmp_path / "root")


def _sftp(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    service = request.getfixturevalue("sshd_service")
    return service.driver(f"conformance-{uuid.uuid4().hex[:8]}")


def _swift(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    service = request.getfixturevalue("swift_service")
    return service.driver(f"conformance-{uuid.uuid4().hex[:8]}", segment_size=TEST_SEGMENT_SIZE)


@pytest.fixture(params=[_local, _sftp, _swift], ids=["local", "sftp", "swift"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    d = RetryingDriver(request.param(request, tmp_path))
    try:
        yield d
        assert_empty(d)
    finally:
        d.close()


def assert_empty(d: Driver) -> None:
    """Fail if anything is left in the store, writers' temp files included; clean up."""
    leftover = sorted(e.path for e in d.walk("", temporaries=True))
    for path in leftover:
        d.delete(path)
    assert leftover == [], f"test leaked files: {leftover[:10]}"


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[sftp_walk.TreeWalk]:
    """Every TreeWalk the SFTP driver makes, to read its counts: a walk that goes on
    where it was (after a lost connection) makes one, a walk started again another."""
    made: list[sftp_walk.TreeWalk] = []

    class Recorded(sftp_walk.TreeWalk):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(sftp_driver, "TreeWalk", Recorded)
    return made
