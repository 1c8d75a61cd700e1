"""A store that must stay where it was found: a driver wrapper for long-lived readers
(the web UI) over a store whose root existed when it was opened.

Listings read a missing root as an empty one (`Driver.root_exists`), so a directory
moved away or a container deleted under a running reader would read as a registry with
nothing in it: a verification of everything would pass, a catalog would empty. Here
every answer that says "nothing there" (a walk that yields nothing, a listing that is
empty or missing, a missing file) asks once more whether the root still exists, and if
it does not, the read fails with `StorageError` ("cannot read storage ..."). A healthy
store pays one existence check per such answer, which is rare where the root exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, TypeVar

from regtool.concurrency import DEFAULT_JOBS
from regtool.errors import StorageError
from regtool.storage.base import Driver, Entry, Prune
from regtool.storage.observed import ObservedDriver

T = TypeVar("T")


def _unobserved(operation: str, failed: bool) -> None:
    pass


class RootKept(ObservedDriver):
    """`inner`, whose reads fail with `StorageError` once its root is gone (see the
    module's docstring). Built on `ObservedDriver` for its delegation alone."""

    def __init__(self, inner: Driver):
        super().__init__(inner, _unobserved)

    def _gone(self) -> StorageError:
        return StorageError(
            f"cannot read storage {self.inner.describe()}: it is no longer there "
            "(moved or deleted while in use)"
        )

    def check_root(self) -> None:
        """`StorageError` unless the root still exists (one request)."""
        if not self.inner.root_exists():
            raise self._gone()

    def _found(self, read: Callable[[], T]) -> T:
        try:
            return read()
        except FileNotFoundError:
            self.check_root()
            raise

    def list(self, prefix: str = "") -> list[Entry]:
        entries = self._found(lambda: self.inner.list(prefix))
        if not entries:
            self.check_root()
        return entries

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        any_entry = False
        for entry in self.inner.walk(prefix, temporaries=temporaries, prune=prune):
            any_entry = True
            yield entry
        if not any_entry:
            self.check_root()

    def stat(self, path: str) -> Entry:
        return self._found(lambda: self.inner.stat(path))

    def get(self, path: str) -> bytes:
        return self._found(lambda: self.inner.get(path))

    def get_many(
        self, paths: Iterable[str], jobs: int = DEFAULT_JOBS
    ) -> dict[str, bytes | Exception]:
        found = self.inner.get_many(paths, jobs)
        if any(isinstance(r, FileNotFoundError) for r in found.values()):
            self.check_root()
        return found

    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        return self._found(lambda: self.inner.open(path, offset, length))

    def exists(self, path: str) -> bool:
        found = self.inner.exists(path)
        if not found:
            self.check_root()
        return found
