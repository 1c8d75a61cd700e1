"""Walks gc needs later, begun at once, each in a thread of its own: the storage answers
one listing while gc works through another (on Swift, `blobs/` and `segments/` are read
while `repositories/` is, instead of one after the other)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Generic, TypeVar

from regtool.storage.base import Entry

T = TypeVar("T")


class Stopped(Exception):
    """The walk was stopped before its end (gc ended first, for another reason)."""


class Ahead(Generic[T]):
    """`consume(walk)`, run in a thread of its own from construction on. `result()` waits
    for its value and raises what it raised (a storage fault of the walk: where gc would
    have met it walking then); `stop()` ends a walk still under way at its next entry and
    waits for the thread, so that nothing outlives gc."""

    def __init__(self, consume: Callable[[Iterable[Entry]], T], walk: Iterator[Entry], name: str):
        self._stopping = threading.Event()
        self._future: Future[T] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(consume, walk), name=f"gc-{name}", daemon=True
        )
        self._thread.start()

    def _run(self, consume: Callable[[Iterable[Entry]], T], walk: Iterator[Entry]) -> None:
        try:
            self._future.set_result(consume(self._until_stopped(walk)))
        except BaseException as e:  # handed to result(), in gc's thread
            self._future.set_exception(e)

    def _until_stopped(self, walk: Iterator[Entry]) -> Iterator[Entry]:
        try:
            for entry in walk:
                if self._stopping.is_set():
                    raise Stopped
                yield entry
        finally:
            close = getattr(walk, "close", None)  # a generator's listing ends with it
            if close is not None:
                close()

    def result(self) -> T:
        return self._future.result()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
