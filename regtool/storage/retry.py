"""Retrying transient faults, in one wrapper around any driver rather than at each call."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, TypeVar

from regtool.errors import TransientError
from regtool.storage.base import DeleteReport, Driver, Entry, LargeObject, Writer

T = TypeVar("T")
log = logging.getLogger(__name__)


class RetryingDriver(Driver):
    """Retries calls that fail with `TransientError` (timeouts, 5xx, a dropped channel),
    `attempts` times in all, the delay doubling from `delay` seconds.

    Streams are retried only while being opened, and `walk` only until its first entry:
    a fault in the middle of a transfer is the caller's to handle. Writers and
    `delete_many` are not retried (the latter reports failures per path)."""

    def __init__(self, inner: Driver, attempts: int = 4, delay: float = 0.2):
        self.inner = inner
        self.name = inner.name
        self.has_large_objects = inner.has_large_objects
        self.attempts = attempts
        self.delay = delay

    def _call(self, fn: Callable[[], T]) -> T:
        wait = self.delay
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except TransientError as e:
                if attempt == self.attempts:
                    raise
                log.warning("%s (attempt %d of %d), retrying", e, attempt, self.attempts)
                time.sleep(wait)
                wait *= 2
        raise AssertionError("unreachable")

    def list(self, prefix: str = "") -> list[Entry]:
        return self._call(lambda: self.inner.list(prefix))

    def walk(self, prefix: str = "", *, temporaries: bool = False) -> Iterator[Entry]:
        wait = self.delay
        for attempt in range(1, self.attempts + 1):
            started = False
            try:
                for entry in self.inner.walk(prefix, temporaries=temporaries):
                    started = True
                    yield entry
                return
            except TransientError as e:
                if started or attempt == self.attempts:
                    raise
                log.warning("%s (attempt %d of %d), retrying", e, attempt, self.attempts)
                time.sleep(wait)
                wait *= 2

    def stat(self, path: str) -> Entry:
        return self._call(lambda: self.inner.stat(path))

    def get(self, path: str) -> bytes:
        return self._call(lambda: self.inner.get(path))

    def put(self, path: str, data: bytes) -> None:
        self._call(lambda: self.inner.put(path, data))

    def put_if_absent(self, path: str, data: bytes) -> bool:
        return self._call(lambda: self.inner.put_if_absent(path, data))

    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        return self._call(lambda: self.inner.open(path, offset, length))

    def writer(self, path: str, append: bool = False) -> Writer:
        return self._call(lambda: self.inner.writer(path, append))

    def move(self, src: str, dst: str) -> None:
        self._call(lambda: self.inner.move(src, dst))

    def delete(self, path: str) -> None:
        self._call(lambda: self.inner.delete(path))

    def delete_many(self, paths: Iterable[str]) -> DeleteReport:
        return self.inner.delete_many(paths)

    def create_root(self) -> None:
        self._call(self.inner.create_root)

    def large_object(self, path: str) -> LargeObject | None:
        return self._call(lambda: self.inner.large_object(path))

    def request_count(self) -> int | None:
        return self.inner.request_count()

    def exists(self, path: str) -> bool:
        return self._call(lambda: self.inner.exists(path))

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return self.inner.describe()
