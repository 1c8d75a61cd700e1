"""Storage faults at a chosen object: a real local driver that fails where a test says, the
way a remote store can fail on its own (a timeout, a dropped connection mid-read) but not
on demand. Wrapped in the retrying driver, a fault that happens every time outlasts the
retries, as a lasting one does.

    driver = faulty(root, Fault("get", "/_manifests/revisions/"))
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest

from regtool.errors import StorageError, TransientError
from regtool.location import Location
from regtool.storage.base import Driver, Entry, Prune
from regtool.storage.local import LocalDriver
from regtool.storage.retry import Backoff, RetryingDriver


def timeout(path: str) -> StorageError:
    return TransientError(f"timed out reading {path}", path=path, driver="local")


@dataclass
class Fault:
    """Fail operation `op` (get, open, read: in the middle of a read, walk) on paths that
    contain `match`, after letting `after` such calls through."""

    op: str
    match: str
    error: Callable[[str], Exception] = timeout
    after: int = 0
    seen: int = 0

    def hit(self, op: str, path: str) -> bool:
        if op != self.op or self.match not in path:
            return False
        self.seen += 1
        return self.seen > self.after


class FaultyLocal(LocalDriver):
    def __init__(self, root: Path, faults: list[Fault]):
        super().__init__(root)
        self.faults = faults

    def _fail(self, op: str, path: str) -> None:
        for fault in self.faults:
            if fault.hit(op, path):
                raise fault.error(path)

    def get(self, path: str) -> bytes:
        self._fail("get", path)
        return super().get(path)

    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        self._fail("open", path)
        reader = super().open(path, offset, length)
        if any(f.op == "read" and f.match in path for f in self.faults):
            fail = lambda: self._fail("read", path)  # noqa: E731
            return _Breaking(reader, fail, offset)  # type: ignore[return-value]
        return reader

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        self._fail("walk", prefix)
        return super().walk(prefix, temporaries=temporaries, prune=prune)


class _Breaking(io.RawIOBase):
    """Reads up to byte `BREAK_AT` of the file, then fails there (if the fault says so),
    however often it is opened again at that place: a lasting fault, which resuming the
    read cannot get past."""

    BREAK_AT = 4096

    def __init__(self, inner: BinaryIO, fail: Callable[[], None], offset: int):
        self.inner, self.fail, self.at = inner, fail, offset

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.at >= self.BREAK_AT:
            self.fail()
        data = self.inner.read(min(len(buffer), max(self.BREAK_AT - self.at, 1)))
        self.at += len(data)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


def faulty(root: Path, *faults: Fault) -> Driver:
    return RetryingDriver(FaultyLocal(root, list(faults)), Backoff(delay=0))


def use_faulty_storage(monkeypatch: pytest.MonkeyPatch, *faults: Fault) -> list[Fault]:
    """Make every local LOCATION the CLI opens fail as `faults` say."""
    monkeypatch.setattr(Location, "open", lambda loc: faulty(Path(loc.path), *faults))
    return list(faults)
