"""A real driver that records what was read whole, to count manifest reads."""

from __future__ import annotations

from collections.abc import Iterable

from regtool.storage.base import Driver, Entry
from regtool.storage.retry import RetryingDriver


class Recording(RetryingDriver):
    def __init__(self, inner: Driver):
        super().__init__(inner)
        self.read: list[str] = []
        self.stats: list[str] = []

    def get(self, path: str) -> bytes:
        self.read.append(path)
        return super().get(path)

    def get_many(self, paths: Iterable[str], jobs: int = 16) -> dict[str, bytes | Exception]:
        paths = list(paths)
        self.read += paths
        return super().get_many(paths, jobs)

    def stat(self, path: str) -> Entry:
        self.stats.append(path)
        return super().stat(path)

    def blob_reads(self) -> list[str]:
        return [p for p in self.read if "/blobs/" in p]
