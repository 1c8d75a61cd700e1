"""Swift Dynamic Large Objects, written the way distribution's Swift driver writes them.

    <prefix>/segments/<R[:3]>/<R[3:]>/0000000000000001     segment 1 (segment_size bytes)
    <prefix>/segments/<R[:3]>/<R[3:]>/0000000000000002     ...
    <prefix>/<path>     0 bytes, X-Object-Manifest: <container>/<prefix>/segments/<R[:3]>/<R[3:]>

R is the hex SHA-1 of the object name and 32 random bytes. Segments are uploaded as the
writer's buffer fills (at most one segment is held in memory); the manifest is written on
commit, so nothing is visible at the path before. Swift concatenates the segments in name
order on GET, which the zero-padded numbers make numeric order.

A writer that appends to an existing DLO (an upload continued by a later request) names
its segments by the offset of their first byte and a token of its own:

    <prefix>/segments/<R[:3]>/<R[3:]>/<offset, %016d>.<8 hex>

They sort after the set's numbered segments (a set of k numbered segments holds more than
k bytes, once k > 1) and after every earlier append. Swift has no atomic create, so two
requests may append to one upload at once despite the upload's lease; with names of their
own they can never overwrite each other's segments: both land, the object's size is the
sum, and whoever checks it sees that it is not what they wrote. (With distribution's
numbering they would overwrite a segment with one of the same size, and the size would
tell nothing.)

A segment set is named here by its driver path (`segments/<R[:3]>/<R[3:]>`).

A writer is not retried as a whole (its bytes come from the caller), so it retries its
own requests, each of which can be sent again as it was: a segment PUT (same name, same
bytes, held in memory), the manifest PUT, HEADs, listings and the deletes of segments,
with the `backoff` the retry wrapper hands down (`Driver.retry_steps`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from regtool.errors import InvalidPath, PathNotFound, StorageError, TransientError
from regtool.storage.backoff import Backoff, retried
from regtool.storage.base import Writer
from regtool.storage.swift.container import Container, content_length
from regtool.storage.swift.errors import DRIVER

T = TypeVar("T")
log = logging.getLogger(__name__)

#: distribution's default chunk size for its Swift driver.
DEFAULT_SEGMENT_SIZE = 20 * 1024 * 1024
#: Waiting for a new DLO's segments to show in its size: first pause, and the total.
SETTLE_FIRST = 0.2
SETTLE_TOTAL = 15.0

MANIFEST_HEADER = "X-Object-Manifest"


def manifest(headers: dict[str, str]) -> str | None:
    """The `X-Object-Manifest` value of HEAD headers (lower-case names): `<container>/
    <segment prefix>` for a DLO, None for a plain object."""
    return headers.get(MANIFEST_HEADER.lower()) or None


def segment_path(segment_set: str, number: int) -> str:
    """Segment `number` (from 1) of a set, as distribution names it."""
    return f"{segment_set}/{number:016d}"


def appended_segment_path(segment_set: str, offset: int, token: str) -> str:
    """A segment appended at byte `offset` by the writer whose token is `token`."""
    return f"{segment_set}/{offset:016d}.{token}"


class LargeObjects:
    """DLOs in `objects` whose segments lie under driver path `segment_root`, written in
    segments of `segment_size` bytes (less if the cluster's `max_file_size` is lower)."""

    def __init__(self, objects: Container, segment_root: str, segment_size: int):
        self.objects = objects
        self.segment_root = segment_root
        self._segment_size = segment_size
        self._fitted: int | None = None
        self._lock = threading.Lock()
        #: Retries a writer's requests on transient faults; None: each is tried once.
        self.backoff: Backoff | None = None

    def step(self, fn: Callable[[], T]) -> T:
        """`fn()`, a request that can be sent again as it was, retried as `backoff` says."""
        return retried(fn, self.backoff)

    def delete(self, paths: Sequence[str]) -> dict[str, StorageError]:
        """Delete objects as `Container.delete` does, those that met a transient fault
        (a throttled bulk delete) tried again as `backoff` says; returns what failed."""
        failed = self.objects.delete(paths)
        failures, waited = 0, 0.0
        while self.backoff is not None:
            faults = [e for e in failed.values() if isinstance(e, TransientError)]
            if not faults:
                break
            failures += 1
            try:
                waited += self.backoff.pause(faults[0], failures, waited)
            except TransientError:
                break
            again = [p for p, e in failed.items() if isinstance(e, TransientError)]
            for path in again:
                del failed[path]
            failed.update(self.objects.delete(again))
        return failed

    def segment_size(self) -> int:
        """Bytes a segment holds: the configured size, cut to the cluster's
        `max_file_size` (saying so once)."""
        if self._fitted is None:
            with self._lock:
                if self._fitted is None:
                    self._fitted = self._fit(self.objects.session.capabilities().max_file_size)
        return self._fitted

    def _fit(self, max_file_size: int) -> int:
        if self._segment_size <= max_file_size:
            return self._segment_size
        log.warning(
            "segment size %d bytes is over the Swift cluster's max_file_size of %d bytes: "
            "writing segments of %d bytes",
            self._segment_size,
            max_file_size,
            max_file_size,
        )
        return max_file_size

    def new_segment_set(self, path: str) -> str:
        digest = hashlib.sha1(self.objects.name(path).encode() + os.urandom(32)).hexdigest()
        return f"{self.segment_root}/{digest[:3]}/{digest[3:]}"

    def own_segment_set(self, manifest: str | None) -> str | None:
        """The segment set an `X-Object-Manifest` value names, if it lies in the segment
        root: segments elsewhere are not the driver's to delete or extend."""
        if not manifest:
            return None
        path = self.objects.dereference(manifest)
        if path is not None and path.startswith(self.segment_root + "/"):
            try:
                self.objects.name(path.rstrip("/"))
            except InvalidPath:  # `a//b`, `..`: Swift takes it, it names no segment here
                log.warning("large object naming an invalid segment prefix: %s", manifest)
                return None
            return path.rstrip("/")
        log.warning("large object with segments outside %s: %s", self.objects.describe(), manifest)
        return None

    def segments(self, segment_set: str) -> list[str]:
        """The paths of the segments listed in `segment_set`."""
        return [e.path for e in self.objects.listing(segment_set)]

    def listed_size(self, segment_set: str) -> int:
        """The bytes in the segments listed in `segment_set`."""
        return sum(e.size or 0 for e in self.objects.listing(segment_set))

    def size(self, headers: dict[str, str]) -> int | None:
        """The content size of the object whose HEAD gave `headers`: its Content-Length,
        except for a DLO of more segments than a listing page, whose HEAD says 0 (Swift
        sums only the first page): then the size of its own segments, listed."""
        length = content_length(headers)
        if length == 0:
            own = self.own_segment_set(manifest(headers))
            if own:
                return self.listed_size(own)
        return length

    def manifest_of(self, path: str) -> str | None:
        """The own segment set of the DLO at `path`; None if absent or a plain object."""
        try:
            headers = self.objects.head(path, follow=False)
        except PathNotFound:
            return None
        return self.own_segment_set(manifest(headers))

    def link(self, path: str, manifest: str) -> None:
        """Write a DLO manifest at `path` naming `manifest` (`<container>/<prefix>`)."""
        self.objects.put(path, b"", {MANIFEST_HEADER: manifest})

    def put_manifest(self, path: str, segment_set: str) -> None:
        # Unquoted, as distribution writes it (Swift unquotes the value).
        self.link(path, self.objects.reference(segment_set))

    def delete_segment_set(self, segment_set: str | None) -> None:
        """Delete a segment set that no manifest names any more; failures are logged."""
        if segment_set:
            failed = self.delete(self.step(lambda: self.segments(segment_set)))
            if failed:
                log.warning("%d segments of %s not deleted", len(failed), segment_set)

    def writer(self, path: str, append: bool) -> SwiftWriter:
        """A writer for the DLO at `path` (see `regtool.storage.base.Writer`)."""
        return SwiftWriter(self, path, append)


class SwiftWriter(Writer):
    #: A new set's segments, or appended ones named with this writer's token.
    isolated = True

    def __init__(self, dlo: LargeObjects, path: str, append: bool):
        self._dlo = dlo
        self._objects = objects = dlo.objects
        self._path = path
        self._segment_size = dlo.segment_size()
        self._buffer = bytearray()
        self._added: list[str] = []  # segments this writer uploaded: cancel deletes them
        self._done = False
        self._error: StorageError | None = None  # a segment that failed: never commit
        self._append = append
        self._write_manifest = True
        self._token: str | None = None  # appending to a DLO: segments named by offset
        self._segments = 0  # in the set once this writer's are added
        size = 0
        if not append:
            self._segment_set = dlo.new_segment_set(path)
            self._next = 1
        else:
            headers = dlo.step(lambda: objects.head(path))  # PathNotFound if absent
            size = dlo.step(lambda: dlo.size(headers)) or 0
            existing = manifest(headers)
            if existing:
                own = dlo.own_segment_set(existing)
                if own is None:
                    raise StorageError(
                        f"cannot append to a large object whose segments are "
                        f"not under {dlo.segment_root}/ ({existing})",
                        path=path,
                        driver=DRIVER,
                    )
                self._segment_set = own
                self._token = os.urandom(4).hex()
                self._segments = len(dlo.step(lambda: dlo.segments(own)))
                self._write_manifest = False  # the manifest already names this set
            else:
                # A plain object turns into a DLO: its content becomes segment 1 (a
                # server-side copy); the path changes only when the manifest is written.
                self._segment_set = dlo.new_segment_set(path)
                first = segment_path(self._segment_set, 1)
                self._added.append(first)
                dlo.step(lambda: objects.copy(path, first))
                self._next = 2
                self._segments = 1
        self._size = size
        self._flushed = size  # where the buffer's bytes go in the object

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> int:
        if self._error is not None:
            raise self._error
        if self._done:
            raise StorageError("writer already closed", path=self._path, driver=DRIVER)
        view = memoryview(data)
        limit = self._segment_size
        while view:
            take = min(len(view), limit - len(self._buffer))
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) >= limit:
                self._flush()
        self._size += len(data)
        return len(data)

    def _flush(self) -> None:
        if not self._buffer:
            return
        data = bytes(self._buffer)
        self._buffer.clear()  # one segment in memory during the upload, not two
        if self._token is None:
            path = segment_path(self._segment_set, self._next)
            self._next += 1
        else:
            path = appended_segment_path(self._segment_set, self._flushed, self._token)
        self._flushed += len(data)
        self._added.append(path)  # before the PUT: a failed PUT may still have landed
        self._segments += 1
        try:
            self._dlo.step(lambda: self._objects.put(path, data))
        except StorageError as e:
            self._error = e  # the content has a hole now: commit must refuse
            raise

    def commit(self) -> None:
        if self._error is not None:
            raise self._error
        if self._done:
            return
        self._flush()
        if self._write_manifest:
            dlo = self._dlo
            replaced = None if self._append else dlo.step(lambda: dlo.manifest_of(self._path))
            dlo.step(lambda: dlo.put_manifest(self._path, self._segment_set))
            self._done = True  # the segments belong to the manifest now
            if replaced != self._segment_set:
                self._dlo.delete_segment_set(replaced)
        self._done = True
        self._wait_for_segments()

    def _wait_for_segments(self) -> None:
        """Container listings (which Swift uses to assemble a DLO) lag behind writes on a
        busy cluster: wait until the object's size covers what was written, as
        distribution does. A cluster that does not keep the manifest, or does not join
        segments it lists, offers no DLOs: that is said plainly."""
        # Swift sums a DLO's segments on HEAD only when they fit one listing page.
        summed = self._segments < self._objects.session.capabilities().listing_limit
        pause, waited = SETTLE_FIRST, 0.0
        while True:
            headers = self._dlo.step(lambda: self._objects.head(self._path))
            if not manifest(headers):
                if self._size:
                    raise self._no_dlo("does not keep the X-Object-Manifest header")
                return  # nothing written: a 0-byte object is as good

            def listed() -> int:
                return self._dlo.step(lambda: self._dlo.listed_size(self._segment_set))

            length = content_length(headers) if summed else listed()
            if length is None or length >= self._size:
                return
            if waited + pause > SETTLE_TOTAL:
                if summed and listed() >= self._size:
                    raise self._no_dlo("lists the segments but does not join them")
                raise StorageError(
                    f"Timeout expired while waiting for segments of {self._path} to show up",
                    path=self._path,
                    driver=DRIVER,
                )
            time.sleep(pause)
            waited += pause
            pause *= 2

    def _no_dlo(self, what: str) -> StorageError:
        return StorageError(
            f"the Swift cluster {what} of large object {self._path}: it offers no Dynamic "
            "Large Objects (the dlo middleware), which regtool and distribution write",
            path=self._path,
            driver=DRIVER,
        )

    def cancel(self) -> None:
        if self._done:
            return
        self._done = True
        self._buffer.clear()
        failed = self._dlo.delete(self._added)
        if failed:
            raise StorageError(
                f"{len(failed)} segments of a cancelled upload not deleted",
                path=self._path,
                driver=DRIVER,
            )
