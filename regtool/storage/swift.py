"""An OpenStack Swift container (python-swiftclient), laid out like distribution's driver.

Driver paths live under `<container>/<prefix>/`. Large objects written by `writer()` are
DLOs exactly as distribution writes them (see `swift_dlo`): a 0-byte manifest with
`X-Object-Manifest: <container>/<prefix>/segments/<3 hex>/<37 hex>` and numbered
segments `…/%016d` beside the files. Swift follows DLOs on GET and HEAD; this driver
follows them on delete, move and append.

Login, connections (one per thread, one token for all), the request count and error
translation are in `swift_session`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote, unquote

from swiftclient import client as sc

from regtool.errors import (
    InvalidPath,
    PathNotFound,
    StorageError,
)
from regtool.storage import swift_dlo as dlo
from regtool.storage.base import (
    DeleteReport,
    Driver,
    Entry,
    LargeObject,
    Writer,
    check_path,
    join,
)
from regtool.storage.swift_session import (
    NETWORK_ERRORS,
    PreconditionFailed,
    RangeNotSatisfiable,
    SwiftCredentials,
    SwiftSession,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

PAGE = 10_000  # Swift's largest listing page
CHUNK = 64 * 1024  # read size when streaming an object
CONTENT_TYPE = "application/octet-stream"  # what distribution stores everything as
PARALLEL = 8  # HEADs / DELETEs in flight when a request per object is needed


def _listing_time(value: str | None) -> datetime | None:
    if not value:
        return None
    when = datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _header_time(headers: dict[str, str]) -> datetime | None:
    if headers.get("x-timestamp"):
        return datetime.fromtimestamp(float(headers["x-timestamp"]), UTC)
    if headers.get("last-modified"):
        return parsedate_to_datetime(headers["last-modified"]).astimezone(UTC)
    return None


class _Reader(io.RawIOBase):
    """An object body being streamed; errors are translated, `limit` bytes at most."""

    def __init__(self, driver: SwiftDriver, path: str, body: Any, skip: int, limit: int | None):
        self._driver, self._path, self._body = driver, path, body
        self._skip, self._limit = skip, limit

    def readable(self) -> bool:
        return True

    def _read(self, n: int) -> bytes:
        try:
            return bytes(self._body.read(n))
        except NETWORK_ERRORS as e:
            raise self._driver.session.network_error(e, self._path) from None

    def readinto(self, buffer: Any) -> int:
        while self._skip:  # the server ignored our Range header
            self._skip -= len(self._read(min(self._skip, CHUNK))) or self._skip
        want = len(buffer) if self._limit is None else min(len(buffer), self._limit)
        data = self._read(want) if want > 0 else b""
        buffer[: len(data)] = data
        if self._limit is not None:
            self._limit -= len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(NETWORK_ERRORS):
                self._body.close()
        super().close()


class SwiftDriver(Driver):
    name = "swift"

    def __init__(
        self,
        credentials: SwiftCredentials,
        container: str,
        prefix: str = "",
        *,
        segment_prefix: str = "segments",
        segment_size: int = 20 * 1024 * 1024,
        timeout: float = 60.0,
    ):
        if not container or "/" in container:
            raise StorageError(f"invalid Swift container name: {container!r}", driver=self.name)
        if segment_size < 1:
            raise StorageError("segment size must be positive", driver=self.name)
        self.credentials = credentials
        self.container = container
        self.prefix = check_path(prefix.strip("/"), allow_root=True)
        self.segment_root = join(self.prefix, check_path(segment_prefix.strip("/")))
        self.segment_size = segment_size
        self.timeout = timeout
        self.session = SwiftSession(credentials, timeout)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._bulk_max: int | None = None  # unknown until /info is asked

    # --- plumbing ----------------------------------------------------------------------
    has_large_objects = True

    @property
    def requests(self) -> int:
        """HTTP requests made so far, logins included."""
        return self.session.requests

    def request_count(self) -> int | None:
        return self.session.requests

    def create_root(self) -> None:
        # PUT of an existing container is a no-op (202), so no HEAD first.
        self.session.call(sc.put_container, self.container, path="")

    def large_object(self, path: str) -> LargeObject | None:
        headers = self._head(path)
        own = dlo.own_segment_set(self, headers.get("x-object-manifest"))
        length = headers.get("content-length")
        return LargeObject(None if length is None else int(length), self._rel(own) if own else None)

    def describe(self) -> str:
        return f"swift://{join(self.container, self.prefix)}"

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool:
            pool.shutdown()
        self.session.close()

    def _map(self, fn: Callable[[str], T], names: list[str]) -> list[T]:
        """`fn` over `names`, PARALLEL at a time, in threads that keep their connections."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(PARALLEL, thread_name_prefix="swift")
            pool = self._pool
        return list(pool.map(fn, names))

    # --- names -------------------------------------------------------------------------
    def _obj(self, path: str) -> str:
        check_path(path)
        return f"{self.prefix}/{path}" if self.prefix else path

    def _dir(self, path: str) -> str:
        """The listing prefix for everything below directory `path`."""
        check_path(path, allow_root=True)
        name = join(self.prefix, path)
        return f"{name}/" if name else ""

    def _rel(self, name: str) -> str:
        return name[len(self.prefix) + 1 :] if self.prefix else name

    def _file_entry(self, item: dict[str, Any]) -> Entry:
        # A DLO manifest lists as 0 bytes, indistinguishable from an empty file: unknown.
        size = int(item.get("bytes") or 0) or None
        return Entry(
            self._rel(item["name"]),
            size=size,
            modified=_listing_time(item.get("last_modified")),
            checksum=item.get("hash"),
        )

    def _listing(self, prefix: str, delimiter: str | None = None) -> Iterator[dict[str, Any]]:
        """Every listing item under `prefix`, page by page; nothing if the container is
        missing."""
        marker = None
        while True:
            try:
                _, page = self.session.call(
                    sc.get_container,
                    self.container,
                    marker=marker,
                    limit=PAGE,
                    prefix=prefix or None,
                    delimiter=delimiter,
                    path=prefix,
                )
            except PathNotFound:
                return
            yield from page
            if len(page) < PAGE:
                return
            marker = page[-1].get("name") or page[-1].get("subdir")

    def _head(self, path: str, name: str | None = None) -> dict[str, str]:
        return self.session.call(sc.head_object, self.container, name or self._obj(path), path=path)

    def _put(
        self, name: str, data: bytes, path: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.session.call(
                sc.put_object,
                self.container,
                name,
                contents=data,
                content_length=len(data),
                content_type=CONTENT_TYPE,
                headers=headers,
                path=path,
            )
        except PathNotFound:
            raise StorageError(
                f"container {self.container} does not exist", path=path, driver=self.name
            ) from None

    def _copy(self, source: str, target: str, path: str) -> None:
        """Server-side copy of a plain object (a DLO would be copied as its content)."""
        copy_from = quote(f"/{self.container}/{source}")
        self.session.call(
            sc.put_object,
            self.container,
            target,
            contents=None,
            content_length=0,
            headers={"X-Copy-From": copy_from},
            path=path,
        )

    # --- reading -----------------------------------------------------------------------
    def list(self, prefix: str = "") -> list[Entry]:
        directory = self._dir(prefix)
        entries: list[Entry] = []
        for item in self._listing(directory, "/"):
            if "subdir" in item:
                if item["subdir"] != directory:
                    entries.append(Entry(self._rel(item["subdir"].rstrip("/")), is_dir=True))
            elif item["name"] != directory:
                entries.append(self._file_entry(item))
        if not entries and prefix:
            raise PathNotFound(prefix, driver=self.name)
        return entries

    def walk(self, prefix: str = "", *, temporaries: bool = False) -> Iterator[Entry]:
        for item in self._listing(self._dir(prefix)):
            if "name" in item:
                yield self._file_entry(item)

    def stat(self, path: str) -> Entry:
        name = self._obj(path)
        try:
            headers = self._head(path, name)
        except PathNotFound:
            _, page = self.session.call(
                sc.get_container, self.container, limit=1, prefix=name + "/", path=path
            )
            if page:
                return Entry(path, is_dir=True)
            raise PathNotFound(path, driver=self.name) from None
        length = headers.get("content-length")
        return Entry(
            path, size=None if length is None else int(length), modified=_header_time(headers)
        )

    def get(self, path: str) -> bytes:
        _, body = self.session.call(sc.get_object, self.container, self._obj(path), path=path)
        return bytes(body)

    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        name = self._obj(path)
        if offset < 0 or (length is not None and length < 0):
            raise StorageError("negative offset or length", path=path, driver=self.name)
        if length == 0:
            self._head(path, name)  # PathNotFound if absent
            return io.BufferedReader(_Reader(self, path, io.BytesIO(), 0, 0))
        headers = {}
        if length is not None:
            headers["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            got, body = self.session.call(
                sc.get_object,
                self.container,
                name,
                resp_chunk_size=CHUNK,
                headers=headers,
                path=path,
            )
        except RangeNotSatisfiable:
            return io.BufferedReader(_Reader(self, path, io.BytesIO(), 0, 0))
        skip = offset if headers and "content-range" not in got else 0
        return io.BufferedReader(_Reader(self, path, body, skip, length), CHUNK)

    # --- writing -----------------------------------------------------------------------
    def put(self, path: str, data: bytes) -> None:
        self._put(self._obj(path), bytes(data), path)

    def put_if_absent(self, path: str, data: bytes) -> bool:
        try:
            self._put(self._obj(path), bytes(data), path, {"If-None-Match": "*"})
        except PreconditionFailed:
            return False
        return True

    def writer(self, path: str, append: bool = False) -> Writer:
        return dlo.SwiftWriter(self, path, append)

    def move(self, src: str, dst: str) -> None:
        source, target = self._obj(src), self._obj(dst)
        headers = self._head(src, source)
        if source == target:
            return
        replaced = dlo.manifest_of(self, target, dst)
        manifest = headers.get("x-object-manifest")
        if manifest:
            # A DLO moves by its manifest alone; the segments stay where they are.
            self._put(target, b"", dst, {"X-Object-Manifest": manifest})
        else:
            self._copy(source, target, src)
        with contextlib.suppress(PathNotFound):  # deleted meanwhile: the move still happened
            self.session.call(sc.delete_object, self.container, source, path=src)
        if replaced != dlo.own_segment_set(self, manifest):
            dlo.delete_segment_set(self, replaced)

    def delete(self, path: str) -> None:
        name = self._obj(path)
        try:
            headers = self._head(path, name)
        except PathNotFound:
            headers = None
        if headers is not None:  # a file: it and its segments
            segment_set = dlo.own_segment_set(self, headers.get("x-object-manifest"))
            self._delete_or_raise([name], path)
            dlo.delete_segment_set(self, segment_set)
            return
        items = [item for item in self._listing(name + "/") if "name" in item]
        if not items:
            raise PathNotFound(path, driver=self.name)
        # Only 0-byte objects can be DLO manifests; a HEAD tells.
        maybe = [item["name"] for item in items if not item.get("bytes")]
        manifests = self._map(lambda n: dlo.manifest_of(self, n, path), maybe)
        names = [item["name"] for item in items]
        for segment_set in dict.fromkeys(m for m in manifests if m):
            names.extend(dlo.segments(self, segment_set))
        # Manifests first (they are listed first), so no reader meets half a DLO.
        self._delete_or_raise(list(dict.fromkeys(names)), path)

    def _delete_or_raise(self, names: list[str], path: str) -> None:
        failed = self._delete_names(names)
        if failed:
            first = next(iter(failed.items()))
            raise StorageError(
                f"{len(failed)} objects not deleted, e.g. {first[0]}: {first[1]}",
                path=path,
                driver=self.name,
            )

    def delete_many(self, paths: Iterable[str]) -> DeleteReport:
        report = DeleteReport()
        names: dict[str, str] = {}
        for path in paths:
            try:
                names.setdefault(self._obj(path), path)
            except InvalidPath as e:
                report.failed[path] = str(e)
        failed = self._delete_names(list(names))
        for name, path in names.items():
            if name in failed:
                report.failed[path] = failed[name]
            else:
                report.deleted.append(path)
        return report

    def _bulk_delete_limit(self) -> int:
        """Names per bulk-delete request, 0 if the cluster's /info does not offer it."""
        if self._bulk_max is None:
            try:
                bulk = self.session.capabilities().get("bulk_delete")
            except StorageError as e:
                log.info("no usable /info (%s): deleting one object at a time", e)
                return 0  # ask again next time: the fault may pass
            self._bulk_max = int(bulk.get("max_deletes_per_request", PAGE)) if bulk else 0
        return self._bulk_max

    def _delete_names(self, names: list[str]) -> dict[str, str]:
        """Delete objects by name; absent ones count as deleted. Returns name -> error."""
        if not names:
            return {}
        step = self._bulk_delete_limit()
        failed: dict[str, str] = {}
        if step:
            for i in range(0, len(names), step):
                failed.update(self._bulk_delete(names[i : i + step]))
            return failed

        def one(name: str) -> None:
            try:
                self.session.call(sc.delete_object, self.container, name, path=name)
            except PathNotFound:
                pass
            except StorageError as e:
                failed[name] = str(e)

        self._map(one, names)
        return failed

    def _bulk_delete(self, names: list[str]) -> dict[str, str]:
        body = "\n".join(quote(f"/{self.container}/{n}") for n in names).encode()
        try:
            _, raw = self.session.call(
                sc.post_account,
                headers={"Content-Type": "text/plain", "Accept": "application/json"},
                data=body,
                query_string="bulk-delete",
            )
            result = json.loads(raw)  # after the whitespace Swift sends while it works
        except (StorageError, ValueError) as e:
            return dict.fromkeys(names, f"bulk delete failed: {e}")
        lead = f"/{self.container}/"
        failed = {
            unquote(n).removeprefix(lead): str(status) for n, status in result.get("Errors") or []
        }
        status = str(result.get("Response Status", ""))
        if not failed and not status.startswith("2"):
            detail = f"bulk delete: {status} {result.get('Response Body', '')}".strip()
            return dict.fromkeys(names, detail)
        return failed
