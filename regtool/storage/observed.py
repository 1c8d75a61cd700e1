"""Watching a driver's calls, in one wrapper around any driver: each call is reported
to `observe(operation, failed)` once it ends (a server counts them in its metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, TypeVar

from regtool.concurrency import DEFAULT_JOBS
from regtool.storage.backoff import Backoff
from regtool.storage.base import DeleteReport, Driver, Entry, LargeObject, Prune, Writer

T = TypeVar("T")

#: `observe(operation, failed)`: operation is the method's name (`get`, `walk`...);
#: `failed` is True for an error other than a missing path (`FileNotFoundError`).
Observer = Callable[[str, bool], None]


class ObservedDriver(Driver):
    """`inner`, with every call reported to `observe`. A stream (`open`, `writer`) and a
    `walk` count as one call, made when it is opened (its later failures are not seen);
    a `get_many` as one call, failed only when the whole batch failed.
    Must be cheap: `observe` runs on the calling thread."""

    def __init__(self, inner: Driver, observe: Observer):
        self.inner = inner
        self.observe = observe
        self.name = inner.name
        self.has_large_objects = inner.has_large_objects
        self.listed_checksums = inner.listed_checksums
        self.resumes_walks = inner.resumes_walks

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            result = fn()
        except FileNotFoundError:
            self.observe(operation, False)
            raise
        except BaseException:
            self.observe(operation, True)
            raise
        self.observe(operation, False)
        return result

    def list(self, prefix: str = "") -> list[Entry]:
        return self._call("list", lambda: self.inner.list(prefix))

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        return self._call(
            "walk", lambda: self.inner.walk(prefix, temporaries=temporaries, prune=prune)
        )

    def stat(self, path: str) -> Entry:
        return self._call("stat", lambda: self.inner.stat(path))

    def get(self, path: str) -> bytes:
        return self._call("get", lambda: self.inner.get(path))

    def get_many(
        self, paths: Iterable[str], jobs: int = DEFAULT_JOBS
    ) -> dict[str, bytes | Exception]:
        return self._call("get_many", lambda: self.inner.get_many(paths, jobs))

    def put(self, path: str, data: bytes) -> None:
        self._call("put", lambda: self.inner.put(path, data))

    def put_if_absent(self, path: str, data: bytes) -> bool:
        return self._call("put_if_absent", lambda: self.inner.put_if_absent(path, data))

    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        return self._call("open", lambda: self.inner.open(path, offset, length))

    def writer(self, path: str, append: bool = False) -> Writer:
        return self._call("writer", lambda: self.inner.writer(path, append))

    def move(self, src: str, dst: str) -> None:
        self._call("move", lambda: self.inner.move(src, dst))

    def delete(self, path: str) -> None:
        self._call("delete", lambda: self.inner.delete(path))

    def delete_many(self, paths: Iterable[str]) -> DeleteReport:
        return self._call("delete_many", lambda: self.inner.delete_many(paths))

    def create_root(self) -> None:
        self._call("create_root", self.inner.create_root)

    def root_exists(self) -> bool:
        return self._call("root_exists", self.inner.root_exists)

    def large_object(self, path: str) -> LargeObject | None:
        return self._call("large_object", lambda: self.inner.large_object(path))

    def segment_set(self, path: str) -> str | None:
        return self._call("segment_set", lambda: self.inner.segment_set(path))

    def exists(self, path: str) -> bool:
        return self._call("stat", lambda: self.inner.exists(path))

    def retry_steps(self, backoff: Backoff) -> None:
        self.inner.retry_steps(backoff)

    def request_count(self) -> int | None:
        return self.inner.request_count()

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return self.inner.describe()
