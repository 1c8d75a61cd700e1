"""An OpenStack Swift container as a `Driver`, laid out like distribution's Swift driver.

Driver paths live under `<container>/<prefix>/`. Large objects written by `writer()` are
DLOs exactly as distribution writes them (see `dlo`). Swift follows DLOs on HEAD; this
driver reads them by their segments (see `segmented`: Swift's own GET of a DLO is rate
limited) and follows them on delete, move and append.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from regtool.errors import InvalidPath, PathNotFound, StorageError, TransientError
from regtool.storage.backoff import Backoff
from regtool.storage.base import (
    DeleteReport,
    Driver,
    Entry,
    LargeObject,
    Prune,
    Writer,
    check_path,
)
from regtool.storage.swift.container import Container, LargeObjectManifest, header_time
from regtool.storage.swift.credentials import SwiftCredentials
from regtool.storage.swift.dlo import DEFAULT_SEGMENT_SIZE, LargeObjects, manifest
from regtool.storage.swift.errors import DRIVER, PreconditionFailed
from regtool.storage.swift.segmented import SegmentReads
from regtool.storage.swift.session import SwiftSession


def _raise_failures(failed: dict[str, StorageError], path: str) -> None:
    """Raise for objects a delete left behind: the first transient error as it is (the
    retry wrapper can act on it), else one `StorageError` that counts them."""
    if not failed:
        return
    for error in failed.values():
        if isinstance(error, TransientError):
            raise error
    first, error = next(iter(failed.items()))
    raise StorageError(
        f"{len(failed)} objects not deleted, e.g. {first}: {error}", path=path, driver=DRIVER
    )


class SwiftDriver(Driver):
    """A Swift `container`, below `prefix`, with `credentials`.

    segment_prefix: where large objects' segments go, below the prefix (distribution's
    default "segments"). segment_size: bytes a segment holds (distribution's `chunksize`,
    20 MiB by default; None for the default), cut to the cluster's `max_file_size`.
    timeout: seconds to wait for a connection or an answer.
    """

    name = DRIVER
    has_large_objects = True
    listed_checksums = True

    def __init__(
        self,
        credentials: SwiftCredentials,
        container: str,
        prefix: str = "",
        *,
        segment_prefix: str = "segments",
        segment_size: int | None = None,
        timeout: float = 60.0,
    ):
        if not container or "/" in container:
            raise StorageError(f"invalid Swift container name: {container!r}", driver=DRIVER)
        segment_size = DEFAULT_SEGMENT_SIZE if segment_size is None else segment_size
        if segment_size < 1:
            raise StorageError("segment size must be positive", driver=DRIVER)
        self.credentials = credentials
        self.container = container
        self.prefix = check_path(prefix.strip("/"), allow_root=True)
        self.timeout = timeout
        self.session = SwiftSession(credentials, timeout)
        self.objects = Container(self.session, container, self.prefix)
        self.dlo = LargeObjects(self.objects, check_path(segment_prefix.strip("/")), segment_size)
        self.segment_reads = SegmentReads(self.objects)

    # --- plumbing ----------------------------------------------------------------------
    @property
    def requests(self) -> int:
        """HTTP requests made so far, logins and `/info` included."""
        return self.session.requests

    def request_count(self) -> int | None:
        return self.session.requests

    def retry_steps(self, backoff: Backoff) -> None:
        self.dlo.backoff = backoff

    def create_root(self) -> None:
        self.objects.create()

    def root_exists(self) -> bool:
        return self.objects.exists()

    def large_object(self, path: str) -> LargeObject | None:
        headers = self.objects.head(path)
        return LargeObject(self.dlo.size(headers), self.dlo.own_segment_set(manifest(headers)))

    def segment_set(self, path: str) -> str | None:
        return self.dlo.own_segment_set(manifest(self.objects.head(path, follow=False)))

    def describe(self) -> str:
        return self.objects.describe()

    def close(self) -> None:
        self.segment_reads.close()
        self.objects.close()
        self.session.close()

    # --- reading -----------------------------------------------------------------------
    def list(self, prefix: str = "") -> list[Entry]:
        entries = [*self.objects.listing(prefix, delimiter=True)]
        if not entries and prefix:
            raise PathNotFound(prefix, driver=DRIVER)
        return entries

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        # Swift writers use no temporary names: there is nothing more to yield. One flat
        # listing names every object below `prefix`: `prune` would spare no request.
        yield from self.objects.listing(prefix)

    def stat(self, path: str) -> Entry:
        try:
            headers = self.objects.head(path)
        except PathNotFound:
            if self.objects.has_below(path):
                return Entry(path, is_dir=True)
            raise
        # A plain object's ETag is its content's MD5, as a listing's `hash` is.
        etag = None if manifest(headers) else headers.get("etag", "").strip('"') or None
        return Entry(
            path, size=self.dlo.size(headers), modified=header_time(headers), checksum=etag
        )

    def get(self, path: str) -> bytes:
        got = self.objects.get(path, follow=False)
        if isinstance(got, LargeObjectManifest):
            with self.segment_reads.open(got, 0, None) as f:
                return f.read()
        return got

    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        if offset < 0 or (length is not None and length < 0):
            raise StorageError("negative offset or length", path=path, driver=DRIVER)
        opened = self.objects.open(path, offset, length, follow=False)
        if isinstance(opened, LargeObjectManifest):
            return self.segment_reads.open(opened, offset, length)
        return opened

    # --- writing -----------------------------------------------------------------------
    def put(self, path: str, data: bytes) -> None:
        self.objects.put(path, bytes(data))

    def put_if_absent(self, path: str, data: bytes) -> bool:
        try:
            self.objects.put(path, bytes(data), {"If-None-Match": "*"})
        except PreconditionFailed:
            return False
        return True

    def writer(self, path: str, append: bool = False) -> Writer:
        return self.dlo.writer(path, append)

    def move(self, src: str, dst: str) -> None:
        headers = self.objects.head(src, follow=False)
        if self.objects.name(src) == self.objects.name(dst):
            return
        replaced = self.dlo.manifest_of(dst)
        moved = manifest(headers)
        if moved:
            # A DLO moves by its manifest alone; the segments stay where they are. The old
            # manifest goes first: a failure between the two leaves no object naming the
            # segments (garbage, for `gc --orphan-segments`), never two, and deleting one
            # of two takes the segments from the other (`delete`).
            with contextlib.suppress(PathNotFound):  # deleted meanwhile: ours to finish
                self.objects.delete_object(src)
            self.dlo.step(lambda: self.dlo.link(dst, moved))
        else:
            self.objects.copy(src, dst)
            with contextlib.suppress(PathNotFound):  # deleted meanwhile: it still moved
                self.objects.delete_object(src)
        if replaced != self.dlo.own_segment_set(moved):
            self.dlo.delete_segment_set(replaced)

    def delete(self, path: str) -> None:
        try:
            headers = self.objects.head(path, follow=False)
        except PathNotFound:
            headers = None
        if headers is not None:  # a file: it and its segments
            segment_set = self.dlo.own_segment_set(manifest(headers))
            _raise_failures(self.objects.delete([path]), path)
            self.dlo.delete_segment_set(segment_set)
            return
        entries = [*self.objects.listing(path)]
        if not entries:
            raise PathNotFound(path, driver=DRIVER)
        # Only 0-byte objects (size None) can be DLO manifests; a HEAD tells.
        maybe = [e.path for e in entries if e.size is None]
        manifests = self.objects.map(self.dlo.manifest_of, maybe)
        paths = [e.path for e in entries]
        for segment_set in dict.fromkeys(m for m in manifests if m):
            paths.extend(self.dlo.segments(segment_set))
        # Manifests first (they are listed first), so no reader meets half a DLO.
        _raise_failures(self.objects.delete([*dict.fromkeys(paths)]), path)

    def delete_many(self, paths: Iterable[str]) -> DeleteReport:
        report = DeleteReport()
        valid: dict[str, None] = {}
        for path in paths:
            try:
                self.objects.name(path)
            except InvalidPath as e:
                report.fail(path, e)
            else:
                valid[path] = None
        failed = self.objects.delete([*valid])
        for path in valid:
            if path in failed:
                report.fail(path, failed[path])
            else:
                report.deleted.append(path)
        return report
