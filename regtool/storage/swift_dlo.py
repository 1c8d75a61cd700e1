"""Writing Swift Dynamic Large Objects the way distribution's Swift driver does.

    <prefix>/segments/<R[:3]>/<R[3:]>/0000000000000001     segment 1 (segment_size bytes)
    <prefix>/segments/<R[:3]>/<R[3:]>/0000000000000002     ...
    <prefix>/<path>     0 bytes, X-Object-Manifest: <container>/<prefix>/segments/<R[:3]>/<R[3:]>

R is the hex SHA-1 of the object name and 32 random bytes. Segments are uploaded as the
writer's buffer fills (at most one segment is held in memory); the manifest is written on
commit, so nothing is visible at the path before. Swift concatenates the segments in name
order on GET, which the zero-padded numbers make numeric order.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import TYPE_CHECKING
from urllib.parse import unquote

from regtool.errors import PathNotFound, StorageError
from regtool.storage.base import Writer

if TYPE_CHECKING:
    from regtool.storage.swift import SwiftDriver

log = logging.getLogger(__name__)

#: Waiting for a new DLO's segments to show in its size: first pause, and the total.
SETTLE_FIRST = 0.2
SETTLE_TOTAL = 15.0


def segment_name(segment_set: str, number: int) -> str:
    return f"{segment_set}/{number:016d}"


def new_segment_set(driver: SwiftDriver, name: str) -> str:
    digest = hashlib.sha1(name.encode() + os.urandom(32)).hexdigest()
    return f"{driver.segment_root}/{digest[:3]}/{digest[3:]}"


def own_segment_set(driver: SwiftDriver, manifest: str | None) -> str | None:
    """The segment set an `X-Object-Manifest` names, if it lies in the driver's segment
    area: segments elsewhere are not the driver's to delete or extend."""
    if not manifest:
        return None
    container, _, segments = unquote(manifest).partition("/")
    if container == driver.container and segments.startswith(driver.segment_root + "/"):
        return segments.rstrip("/")
    log.warning("large object with segments outside %s: %s", driver.describe(), manifest)
    return None


def segments(driver: SwiftDriver, segment_set: str) -> list[str]:
    return [item["name"] for item in driver._listing(segment_set + "/") if "name" in item]


def manifest_of(driver: SwiftDriver, name: str, path: str) -> str | None:
    """The own segment set of the DLO at `name`; None if absent or a plain object."""
    try:
        headers = driver._head(path, name)
    except PathNotFound:
        return None
    return own_segment_set(driver, headers.get("x-object-manifest"))


def put_manifest(driver: SwiftDriver, name: str, segment_set: str, path: str) -> None:
    # Unquoted, as distribution writes it (Swift unquotes the value).
    driver._put(name, b"", path, {"X-Object-Manifest": f"{driver.container}/{segment_set}"})


def delete_segment_set(driver: SwiftDriver, segment_set: str | None) -> None:
    if segment_set:
        failed = driver._delete_names(segments(driver, segment_set))
        if failed:
            log.warning("%d segments of %s not deleted", len(failed), segment_set)


class SwiftWriter(Writer):
    def __init__(self, driver: SwiftDriver, path: str, append: bool):
        self._driver = driver
        self._path = path
        self._name = driver._obj(path)
        self._buffer = bytearray()
        self._added: list[str] = []  # segments this writer uploaded: cancel deletes them
        self._done = False
        self._error: StorageError | None = None  # a failed write: never commit
        self._append = append
        self._write_manifest = True
        size = 0
        if not append:
            self._segment_set = new_segment_set(driver, self._name)
            self._next = 1
        else:
            headers = driver._head(path, self._name)  # PathNotFound if absent
            size = int(headers.get("content-length") or 0)
            manifest = headers.get("x-object-manifest")
            if manifest:
                own = own_segment_set(driver, manifest)
                if own is None:
                    raise StorageError(
                        f"cannot append to a large object whose segments are "
                        f"not under {driver.segment_root}/ ({manifest})",
                        path=path,
                        driver=driver.name,
                    )
                self._segment_set = own
                self._next = self._next_number()
                self._write_manifest = False  # the manifest already names this set
            else:
                # A plain object turns into a DLO: its content becomes segment 1 (a
                # server-side copy); the path changes only when the manifest is written.
                self._segment_set = new_segment_set(driver, self._name)
                first = segment_name(self._segment_set, 1)
                self._added.append(first)
                driver._copy(self._name, first, path)
                self._next = 2
        self._size = size

    def _next_number(self) -> int:
        """After the highest segment listed, and after any a lagging listing missed."""
        tails = [n.rsplit("/", 1)[1] for n in segments(self._driver, self._segment_set)]
        number = max((int(t) for t in tails if t.isdigit()), default=0) + 1
        while True:
            try:
                self._driver._head(self._path, segment_name(self._segment_set, number))
            except PathNotFound:
                return number
            number += 1

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> int:
        if self._error is not None:
            raise self._error
        if self._done:
            raise StorageError("writer already closed", path=self._path, driver=self._driver.name)
        view = memoryview(data)
        limit = self._driver.segment_size
        while view:
            take = min(len(view), limit - len(self._buffer))
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) >= limit:
                try:
                    self._flush()
                except StorageError as e:
                    self._error = e
                    raise
        self._size += len(data)
        return len(data)

    def _flush(self) -> None:
        if not self._buffer:
            return
        name = segment_name(self._segment_set, self._next)
        self._added.append(name)  # before the PUT: a failed PUT may still have landed
        data = bytes(self._buffer)
        self._buffer.clear()  # one segment in memory during the upload, not two
        self._next += 1
        self._driver._put(name, data, self._path)

    def commit(self) -> None:
        if self._error is not None:
            raise self._error
        if self._done:
            return
        driver = self._driver
        try:
            self._flush()
        except StorageError as e:
            self._error = e
            raise
        if self._write_manifest:
            replaced = None if self._append else manifest_of(driver, self._name, self._path)
            put_manifest(driver, self._name, self._segment_set, self._path)
            self._done = True  # the segments belong to the manifest now
            if replaced != self._segment_set:
                delete_segment_set(driver, replaced)
        self._done = True
        self._wait_for_segments()

    def _wait_for_segments(self) -> None:
        """Container listings (which Swift uses to assemble a DLO) lag behind writes on a
        busy cluster: wait until the manifest's size covers what was written, as
        distribution does."""
        pause, waited = SETTLE_FIRST, 0.0
        while True:
            length = self._driver._head(self._path, self._name).get("content-length")
            if length is None or int(length) >= self._size:
                return  # no length: over 10,000 segments, Swift does not sum them up front
            if waited + pause > SETTLE_TOTAL:
                raise StorageError(
                    f"Timeout expired while waiting for segments of {self._path} to show up",
                    path=self._path,
                    driver=self._driver.name,
                )
            time.sleep(pause)
            waited += pause
            pause *= 2

    def cancel(self) -> None:
        if self._done:
            return
        self._done = True
        self._buffer.clear()
        failed = self._driver._delete_names(self._added)
        if failed:
            raise StorageError(
                f"{len(failed)} segments of a cancelled upload not deleted",
                path=self._path,
                driver=self._driver.name,
            )
