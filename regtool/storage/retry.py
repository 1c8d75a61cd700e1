"""Retrying transient faults, in one wrapper around any driver rather than at each call."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, TypeVar

from regtool.concurrency import DEFAULT_JOBS
from regtool.errors import PathNotFound, TransientError
from regtool.storage.backoff import Backoff, retried
from regtool.storage.base import DeleteReport, Driver, Entry, LargeObject, Prune, Writer
from regtool.storage.streams import ResumingReader

__all__ = ["Backoff", "RetryingDriver"]

T = TypeVar("T")

#: Read size of the buffer over a resuming reader (large reads bypass it).
READ_BUFFER = 256 * 1024


class RetryingDriver(Driver):
    """Retries calls that fail with `TransientError` (timeouts, 5xx, throttling, a dropped
    connection) as `backoff` says.

    - Reads resume: `open` returns a reader that, when the stream fails part-way, opens it
      again at the first byte not yet read (the driver reconnects), so a dropped
      connection costs a retry, not the transfer. A reader gives up after `attempts`
      faults in a row without a byte read in between. What stays unreadable raises the
      `TransientError` (an access error, never a sign of damaged content).
    - `walk` is retried only until its first entry: a listing cannot resume in the middle
      on every backend, and entries already yielded cannot be taken back. A driver that
      resumes its walks itself (`Driver.resumes_walks`: SFTP, whose walk goes on where it
      was on a new connection) does so with this backoff, and is left to it.
    - Writers are not retried: the bytes written come from the caller (an HTTP request's
      body, say) and cannot be replayed from here, and a half-written append must not be
      written twice. A failed writer discards what it wrote; the caller retries the whole
      write (a registry client re-sends the chunk). Only opening one is retried. Inside a
      writer, the driver retries what can be sent again with `backoff` (a Swift segment
      held in memory, a HEAD): the wrapper hands its backoff down (`Driver.retry_steps`).
    - `get_many` reads again, together, the files whose read met a transient fault.
    - `delete_many` tries the paths whose deletion met a transient fault again (deleting
      is idempotent, and an absent path counts as deleted): the driver reports which
      those are (`DeleteReport.transient`, a bulk-delete request throttled, say), so no
      path is sent again for a fault of its own, and the batches stay the driver's.
    - A call whose first attempt may have taken effect before its answer was lost is
      retried with that in mind: a `delete` or `move` whose retry finds the source gone
      (and, for a move, the target there) succeeded; a `put_if_absent` whose retry finds
      the file holding exactly `data` created it (callers that need to know write content
      of their own, such as a random token).
    """

    def __init__(self, inner: Driver, backoff: Backoff | None = None):
        self.inner = inner
        self.name = inner.name
        self.has_large_objects = inner.has_large_objects
        self.listed_checksums = inner.listed_checksums
        self.resumes_walks = inner.resumes_walks
        self.backoff = backoff or Backoff()

    @property
    def backoff(self) -> Backoff:
        """The retry policy, also of the steps the driver retries inside a call."""
        return self._backoff

    @backoff.setter
    def backoff(self, backoff: Backoff) -> None:
        self._backoff = backoff
        self.inner.retry_steps(backoff)

    def _call(self, fn: Callable[[], T], after_fault: Callable[[], T] | None = None) -> T:
        """`fn()`, retried; attempts after a fault call `after_fault` instead when given."""
        return retried(fn, self.backoff, after_fault)

    def list(self, prefix: str = "") -> list[Entry]:
        return self._call(lambda: self.inner.list(prefix))

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        if self.inner.resumes_walks:  # with our backoff (`retry_steps`)
            yield from self.inner.walk(prefix, temporaries=temporaries, prune=prune)
            return
        failures, waited = 0, 0.0
        while True:
            started = False
            try:
                for entry in self.inner.walk(prefix, temporaries=temporaries, prune=prune):
                    started = True
                    yield entry
                return
            except TransientError as e:
                if started:
                    raise
                failures += 1
                waited += self.backoff.pause(e, failures, waited)

    def stat(self, path: str) -> Entry:
        return self._call(lambda: self.inner.stat(path))

    def get(self, path: str) -> bytes:
        return self._call(lambda: self.inner.get(path))

    def get_many(
        self, paths: Iterable[str], jobs: int = DEFAULT_JOBS
    ) -> dict[str, bytes | Exception]:
        # Reading is idempotent: the files whose read met a transient fault (all of them,
        # when the batch itself failed) are read again, together.
        wanted = list(dict.fromkeys(paths))
        found: dict[str, bytes | Exception] = {}
        todo, failures, waited = wanted, 0, 0.0
        while todo:
            try:
                got = self.inner.get_many(todo, jobs)
            except TransientError as e:
                got = dict.fromkeys(todo, e)
            found.update(got)
            faults = [e for e in got.values() if isinstance(e, TransientError)]
            if not faults:
                break
            failures += 1
            fault = max(faults, key=lambda e: e.retry_after or 0.0)
            try:
                waited += self.backoff.pause(fault, failures, waited)
            except TransientError:
                break  # what stays unreadable is each path's fault
            todo = [p for p, r in got.items() if isinstance(r, TransientError)]
        return {path: found[path] for path in wanted}

    def put(self, path: str, data: bytes) -> None:
        self._call(lambda: self.inner.put(path, data))

    def put_if_absent(self, path: str, data: bytes) -> bool:
        def again() -> bool:
            if self.inner.put_if_absent(path, data):
                return True
            try:  # the lost attempt may have been the one that wrote it
                return self.inner.get(path) == data
            except PathNotFound:
                return False

        return self._call(lambda: self.inner.put_if_absent(path, data), again)

    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        first = self._call(lambda: self.inner.open(path, offset, length))

        def reopen(done: int) -> BinaryIO:
            return self.inner.open(path, offset + done, None if length is None else length - done)

        waited = [0.0]

        def pause(error: TransientError, failures: int) -> None:
            if failures == 1:
                waited[0] = 0.0  # a new stall: its own budget
            waited[0] += self.backoff.pause(error, failures, waited[0])

        return io.BufferedReader(ResumingReader(first, reopen, pause), READ_BUFFER)

    def writer(self, path: str, append: bool = False) -> Writer:
        return self._call(lambda: self.inner.writer(path, append))

    def move(self, src: str, dst: str) -> None:
        def again() -> None:
            try:
                self.inner.move(src, dst)
            except PathNotFound:
                if not self.inner.exists(dst):
                    raise

        self._call(lambda: self.inner.move(src, dst), again)

    def delete(self, path: str) -> None:
        def again() -> None:
            with contextlib.suppress(PathNotFound):  # the lost attempt deleted it
                self.inner.delete(path)

        self._call(lambda: self.inner.delete(path), again)

    def delete_many(self, paths: Iterable[str]) -> DeleteReport:
        report = self.inner.delete_many(paths)
        failures, waited = 0, 0.0
        while report.transient:
            # The longest wait a server asked for holds for the whole retry.
            fault = max(report.transient.values(), key=lambda e: e.retry_after or 0.0)
            failures += 1
            try:
                waited += self.backoff.pause(fault, failures, waited)
            except TransientError:
                return report
            again = self.inner.delete_many(list(report.transient))
            for path in again.deleted:
                del report.failed[path]
            report.deleted.extend(again.deleted)
            report.failed.update(again.failed)
            report.transient = again.transient
        return report

    def create_root(self) -> None:
        self._call(self.inner.create_root)

    def root_exists(self) -> bool:
        return self._call(self.inner.root_exists)

    def large_object(self, path: str) -> LargeObject | None:
        return self._call(lambda: self.inner.large_object(path))

    def segment_set(self, path: str) -> str | None:
        return self._call(lambda: self.inner.segment_set(path))

    def request_count(self) -> int | None:
        return self.inner.request_count()

    def exists(self, path: str) -> bool:
        return self._call(lambda: self.inner.exists(path))

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return self.inner.describe()
