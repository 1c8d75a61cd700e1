"""The objects of one container below a prefix: every request the driver and the large
object code make, addressed by driver path.

A driver path `a/b` is the object `<prefix>/a/b` of the container; this module is the only
one that turns one into the other (`name`, `path`, and `reference` / `dereference` for
the `<container>/<name>` values of `X-Object-Manifest`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import BinaryIO, TypeVar
from urllib.parse import quote, unquote

from swiftclient import client as sc  # type: ignore[import-untyped]

from regtool.errors import PathNotFound, StorageError
from regtool.storage.base import Entry, check_path, join
from regtool.storage.swift.errors import (
    DECIMAL,
    DRIVER,
    NETWORK_ERRORS,
    PreconditionFailed,
    RangeNotSatisfiable,
    status_error,
)
from regtool.storage.swift.reader import CHUNK, ObjectReader
from regtool.storage.swift.session import SwiftSession

T = TypeVar("T")
log = logging.getLogger(__name__)

#: HEAD and GET headers (lower case) that make an object a large one.
MANIFEST_HEADER = "x-object-manifest"
SLO_HEADER = "x-static-large-object"
CONTENT_TYPE = "application/octet-stream"  # what distribution stores everything as
PARALLEL = 8  # HEADs / DELETEs in flight when a request per object is needed
#: Listings whose next page may be asked for ahead at once (a gc walks three).
LISTINGS_AHEAD = 4


def _listing_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def header_time(headers: dict[str, str]) -> datetime | None:
    """An object's modification time from its HEAD headers (`X-Timestamp`, else
    `Last-Modified`); None if neither is readable."""
    try:
        if headers.get("x-timestamp"):
            return datetime.fromtimestamp(float(headers["x-timestamp"]), UTC)
        if headers.get("last-modified"):
            return parsedate_to_datetime(headers["last-modified"]).astimezone(UTC)
    except (TypeError, ValueError, OverflowError, IndexError):
        pass
    return None


def content_length(headers: dict[str, str]) -> int | None:
    """`Content-Length` of HEAD headers in bytes; None if absent or unreadable (a DLO of
    over 10,000 segments has none)."""
    value = headers.get("content-length")
    return int(value) if value is not None and DECIMAL.fullmatch(value) else None


@dataclass(frozen=True)
class LargeObjectManifest:
    """The object at `path` is a DLO whose segments are the objects named with the
    `<container>/<name prefix>` `reference` (its `X-Object-Manifest`)."""

    path: str
    reference: str
    #: the DLO's HEAD (its joined size and ETag) where it was made already
    head: dict[str, str] | None = None


class Container:
    """Objects of `container` below `prefix` (no slashes at either end; "" for none).
    Paths are driver paths (see `regtool.storage.base`); errors are regtool's, with a
    404 on a path raising `PathNotFound`."""

    def __init__(self, session: SwiftSession, container: str, prefix: str):
        self.session = session
        self.container = container
        self.prefix = prefix
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._listings: ThreadPoolExecutor | None = None

    def close(self) -> None:
        pool, self._pool = self._pool, None
        listings, self._listings = self._listings, None
        for each in (pool, listings):
            if each:
                each.shutdown()

    def map(self, fn: Callable[[str], T], items: Sequence[str]) -> list[T]:
        """`fn` over `items`, PARALLEL at a time, in threads that keep their connections."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(PARALLEL, thread_name_prefix="swift")
            pool = self._pool
        return list(pool.map(fn, items))

    # --- names -------------------------------------------------------------------------
    def name(self, path: str) -> str:
        """The object name of driver path `path` (`InvalidPath` if it is not one)."""
        check_path(path)
        return f"{self.prefix}/{path}" if self.prefix else path

    def path(self, name: str) -> str:
        """The driver path of object `name`, which lies below the prefix."""
        return name[len(self.prefix) + 1 :] if self.prefix else name

    def _listing_prefix(self, directory: str) -> str:
        check_path(directory, allow_root=True)
        name = join(self.prefix, directory)
        return f"{name}/" if name else ""

    def reference(self, path: str) -> str:
        """`<container>/<object name>`, the form `X-Object-Manifest` takes."""
        return f"{self.container}/{self.name(path)}"

    def dereference(self, reference: str) -> str | None:
        """The driver path a `<container>/<object name>` reference (possibly quoted)
        points at; None if it lies in another container or outside the prefix."""
        container, _, name = unquote(reference).partition("/")
        if container != self.container:
            return None
        if not self.prefix:
            return name
        return name[len(self.prefix) + 1 :] if name.startswith(self.prefix + "/") else None

    def describe(self) -> str:
        return f"swift://{join(self.container, self.prefix)}"

    # --- container ---------------------------------------------------------------------
    def create(self) -> None:
        """Create the container; nothing if it exists (a PUT of one is a no-op, 202)."""
        self.session.call(sc.put_container, self.container, path="")

    def exists(self) -> bool:
        """Whether the container exists (a HEAD of it)."""
        try:
            self.session.call(sc.head_container, self.container, path="")
        except PathNotFound:
            return False
        return True

    def _entry(self, item: object, directory: str, prefix: str) -> Entry | None:
        """The entry of a listing item; None for the listing's prefix itself (an object
        named `dir/`, as some tools write to mark a directory)."""
        if isinstance(item, dict) and isinstance(item.get("subdir"), str):
            subdir = item["subdir"]
            return Entry(self.path(subdir.rstrip("/")), is_dir=True) if subdir != prefix else None
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise StorageError(
                f"unexpected item in a listing: {str(item)[:100]}", path=directory, driver=DRIVER
            )
        if item["name"] == prefix:
            return None
        # A DLO manifest lists as 0 bytes, indistinguishable from an empty file: unknown.
        size = item.get("bytes")
        hash_ = item.get("hash")
        return Entry(
            self.path(item["name"]),
            size=size if isinstance(size, int) and size > 0 else None,
            modified=_listing_time(item.get("last_modified")),
            checksum=hash_ if isinstance(hash_, str) else None,
        )

    def listing(self, directory: str, *, delimiter: bool = False) -> Iterator[Entry]:
        """Every object below directory `directory` ("" for the root), page by page of
        the cluster's listing limit; nothing if the container is missing. With
        `delimiter`, one level: objects, and directories as `Entry(is_dir=True)`."""
        return self._pages(self._listing_prefix(directory), directory, delimiter)

    def named_with(self, reference: str) -> list[Entry] | None:
        """The objects whose names begin with the name a `<container>/<name prefix>`
        reference gives (an `X-Object-Manifest` value, which names segments by a plain
        prefix, not a directory), in name order; None if the reference lies in another
        container or outside this one's prefix."""
        path = self.dereference(reference)
        if path is None or not path:
            return None
        return list(self._pages(unquote(reference).partition("/")[2], path, False))

    def _page(
        self, prefix: str, directory: str, delimiter: bool, marker: str | None, limit: int
    ) -> list[object]:
        """One listing request: up to `limit` items after `marker`."""
        _, page = self.session.call(
            sc.get_container,
            self.container,
            marker=marker,
            limit=limit,
            prefix=prefix or None,
            delimiter="/" if delimiter else None,
            path=directory,
        )
        return list(page)

    def _ask_ahead(self, fetch: Callable[[], list[object]]) -> Future[list[object]]:
        """`fetch` in a listing thread (made on first use, one per listing in flight)."""
        with self._lock:
            if self._listings is None:
                self._listings = ThreadPoolExecutor(
                    LISTINGS_AHEAD, thread_name_prefix="swift-listing"
                )
            pool = self._listings
        return pool.submit(fetch)

    def _pages(self, prefix: str, directory: str, delimiter: bool) -> Iterator[Entry]:
        # A full page means more may follow: the next one is asked for at once, so that
        # Swift prepares it while this one is parsed and the caller works through it.
        marker = None
        ahead: Future[list[object]] | None = None
        while True:
            limit = self.session.capabilities().listing_limit
            try:
                asked, ahead = ahead, None
                if asked is not None:
                    page = asked.result()
                else:
                    page = self._page(prefix, directory, delimiter, marker, limit)
            except PathNotFound:
                return
            except PreconditionFailed as e:
                # A cluster that hides /info may still allow fewer names than 10,000.
                allowed = e.max_listing_limit()
                if allowed is None or not 0 < allowed < limit:
                    raise
                self.session.lower_listing_limit(allowed)
                continue
            if len(page) >= limit:
                last = page[-1]
                marker = last.get("name") or last.get("subdir") if isinstance(last, dict) else None
                ahead = self._ask_ahead(
                    partial(self._page, prefix, directory, delimiter, marker, limit)
                )
            try:
                entries = [self._entry(item, directory, prefix) for item in page]
                yield from (e for e in entries if e is not None)
            except BaseException:  # the caller stopped early, or a bad item
                if ahead is not None:
                    ahead.cancel()  # not needed, if not under way yet
                raise
            if len(page) < limit:
                return

    def has_below(self, directory: str) -> bool:
        """Whether any object lies below directory `directory` (a one-name listing)."""
        _, page = self.session.call(
            sc.get_container,
            self.container,
            limit=1,
            prefix=self._listing_prefix(directory),
            path=directory,
        )
        return bool(page)

    # --- objects -----------------------------------------------------------------------
    def head(self, path: str, *, follow: bool = True) -> dict[str, str]:
        """The headers of the object at `path`, lower-case names. With `follow` False, of
        the object itself: a DLO's manifest (its `X-Object-Manifest`, 0 bytes) without
        the size and ETag that Swift finds by listing the segments."""
        return self.session.call(
            sc.head_object,
            self.container,
            self.name(path),
            query_string=None if follow else "multipart-manifest=get",
            path=path,
        )

    def get(self, path: str, *, follow: bool = True) -> bytes | LargeObjectManifest:
        """The whole body of the object at `path`; Swift joins a DLO's segments, or with
        `follow` False the DLO's manifest is returned instead (see `open`)."""
        got, body = self.session.call(
            sc.get_object,
            self.container,
            self.name(path),
            query_string=None if follow else "multipart-manifest=get",
            path=path,
        )
        if not follow and got.get(MANIFEST_HEADER):
            return LargeObjectManifest(path, got[MANIFEST_HEADER])
        if not follow and got.get(SLO_HEADER):
            return self.get(path)  # an SLO's manifest came: Swift joins it
        return bytes(body)

    def open(
        self, path: str, offset: int, length: int | None, *, follow: bool = True
    ) -> BinaryIO | LargeObjectManifest:
        """A streaming reader of `length` bytes (None: to the end) from `offset`; empty
        for an offset at or past the end. Swift joins a DLO's segments on the way; with
        `follow` False a DLO is not read but its manifest returned, so that the caller
        can read the segments itself (one request still, for any other object)."""
        name = self.name(path)
        if length == 0:
            self.head(path)  # PathNotFound if absent
            return io.BytesIO()
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
                # the object itself: a DLO's 0-byte manifest rather than its segments
                query_string=None if follow else "multipart-manifest=get",
                path=path,
            )
        except RangeNotSatisfiable:
            if not follow:  # past the end, or any range of a DLO's 0 bytes: HEAD tells
                head = self.head(path)
                if head.get(MANIFEST_HEADER):
                    return LargeObjectManifest(path, head[MANIFEST_HEADER], head)
            return io.BytesIO()
        if not follow and (got.get(MANIFEST_HEADER) or got.get(SLO_HEADER)):
            with contextlib.suppress(*NETWORK_ERRORS):
                body.close()
            reference = got.get(MANIFEST_HEADER)
            if reference:
                return LargeObjectManifest(path, reference)
            return self.open(path, offset, length)  # an SLO: Swift joins it
        skip = offset if headers and "content-range" not in got else 0
        reader = ObjectReader(body, lambda e: self.session.stream_error(e, path), skip, length)
        return io.BufferedReader(reader, CHUNK)

    def put(self, path: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        """Store `data` at `path`, replacing what is there (`PreconditionFailed` if
        `headers` hold a condition that fails)."""
        try:
            self.session.call(
                sc.put_object,
                self.container,
                self.name(path),
                contents=data,
                content_length=len(data),
                content_type=CONTENT_TYPE,
                headers=headers,
                path=path,
            )
        except PathNotFound:
            raise StorageError(
                f"container {self.container} does not exist", path=path, driver=DRIVER
            ) from None

    def copy(self, source: str, target: str) -> None:
        """Server-side copy of a plain object (a DLO would be copied as its content)."""
        copy_from = quote(f"/{self.container}/{self.name(source)}")
        self.session.call(
            sc.put_object,
            self.container,
            self.name(target),
            contents=None,
            content_length=0,
            headers={"X-Copy-From": copy_from},
            path=source,
        )

    def delete_object(self, path: str) -> None:
        """Delete the object at `path`: `PathNotFound` if absent."""
        self.session.call(sc.delete_object, self.container, self.name(path), path=path)

    # --- deleting many -----------------------------------------------------------------
    def delete(self, paths: Sequence[str]) -> dict[str, StorageError]:
        """Delete the objects at `paths` (absent ones count as deleted), in bulk-delete
        requests where the cluster offers them, else one request per object. Returns
        the paths not deleted with their errors (`TransientError` where the cluster
        throttled or failed a whole request). Invalid paths are the caller's to weed out."""
        if not paths:
            return {}
        step = self.session.capabilities().bulk_delete
        failed: dict[str, StorageError] = {}
        if step:
            for i in range(0, len(paths), step):
                failed.update(self._bulk_delete(paths[i : i + step]))
            return failed

        def one(path: str) -> None:
            try:
                self.delete_object(path)
            except PathNotFound:
                pass
            except StorageError as e:
                failed[path] = e

        self.map(one, paths)
        return failed

    def _bulk_delete(self, paths: Sequence[str]) -> dict[str, StorageError]:
        names = {self.name(p): p for p in paths}
        body = "\n".join(quote(f"/{self.container}/{n}") for n in names).encode()
        try:
            _, raw = self.session.call(
                sc.post_account,
                headers={"Content-Type": "text/plain", "Accept": "application/json"},
                data=body,
                query_string="bulk-delete",
            )
            result = json.loads(raw)  # after the whitespace Swift sends while it works
            if not isinstance(result, dict):
                raise ValueError("not a JSON object")
        except StorageError as e:
            return dict.fromkeys(paths, e)
        except ValueError as e:
            error = StorageError(f"bulk delete: unexpected answer: {e}", driver=DRIVER)
            return dict.fromkeys(paths, error)
        lead = f"/{self.container}/"
        failed: dict[str, StorageError] = {}
        errors = result.get("Errors") or []
        if not isinstance(errors, list) or not all(
            isinstance(e, list) and len(e) == 2 for e in errors
        ):
            error = StorageError(f"bulk delete: unexpected errors: {errors!r:.100}", driver=DRIVER)
            return dict.fromkeys(paths, error)
        for quoted, status in errors:
            name = unquote(str(quoted)).removeprefix(lead)
            path = names.get(name, self.path(name))
            code = _status_code(status)
            if code != 404:  # absent counts as deleted
                failed[path] = status_error(code, f"bulk delete: {status}", path)
        status = str(result.get("Response Status", ""))
        if not failed and not status.startswith("2"):
            detail = f"bulk delete: {status} {result.get('Response Body', '')}".strip()
            return dict.fromkeys(paths, status_error(_status_code(status), detail))
        return failed


def _status_code(status: object) -> int | None:
    """200 from a status line such as `200 OK` in a bulk-delete answer."""
    code = str(status).split(" ", 1)[0]
    return int(code) if DECIMAL.fullmatch(code) else None
