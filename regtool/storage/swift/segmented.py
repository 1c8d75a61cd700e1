"""Reading a DLO by its segments, several at a time, rather than through Swift's DLO
middleware.

Swift joins a DLO on GET, but its middleware serves the first `rate_limit_after_segment`
segments (10 by default) and then `rate_limit_segments_per_sec` (1): a 512 MiB blob of
20 MiB segments takes over 15 s however fast the network. The segments themselves are
plain objects with no such limit. So a read here:

1. HEADs the DLO (through the middleware) for the size and ETag Swift would serve;
2. lists the segments the way the middleware does (every object whose name begins with
   the `X-Object-Manifest` prefix, in name order) and checks the listing against the
   HEAD: the sizes must add up, and the MD5 of the segments' ETags joined must be the
   DLO's ETag (how Swift computes it). A listing that disagrees is a DLO being rewritten
   or a listing that lags: the read then goes through the middleware, as it would;
3. maps the range asked for onto the segments and reads it in pieces of at most `PIECE`
   bytes, `AHEAD` pieces in flight, handed out in order. Memory per reader is bounded by
   `AHEAD` x `PIECE` whatever the segment size.

A piece that fails, or comes back short (a segment deleted or rewritten since it was
listed), raises a `TransientError`: the retry wrapper opens the object again at the first
byte not yet returned, which lists the segments anew.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

from regtool.errors import PathNotFound, StorageError, TransientError
from regtool.storage.base import Entry
from regtool.storage.swift.container import (
    Container,
    LargeObjectManifest,
    content_length,
)
from regtool.storage.swift.errors import DRIVER
from regtool.storage.swift.reader import CHUNK

log = logging.getLogger(__name__)

#: Most bytes one segment request asks for (a large segment is read in several).
PIECE = 8 * 1024 * 1024
#: Piece requests in flight (or done, waiting for the reader) per open object.
AHEAD = 4
#: Threads that fetch pieces, shared by every reader of a driver.
THREADS = 16


@dataclass(frozen=True, slots=True)
class Piece:
    """`length` bytes of the segment at `path`, from `offset` within it."""

    path: str
    offset: int
    length: int


def pieces(
    segments: Sequence[tuple[str, int]], offset: int, length: int | None, piece: int = PIECE
) -> list[Piece]:
    """The pieces that hold bytes `offset` .. `offset + length` (None: to the end) of the
    object made of `segments` ((path, size in bytes), in order), each at most `piece`
    bytes; none for a range at or past the end."""
    end = None if length is None else offset + length
    found: list[Piece] = []
    start = 0  # of the current segment within the object
    for path, size in segments:
        if end is not None and start >= end:
            break
        lo, hi = max(offset, start), start + size if end is None else min(end, start + size)
        for at in range(lo, hi, piece):
            found.append(Piece(path, at - start, min(piece, hi - at)))
        start += size
    return found


def dlo_etag(hashes: Sequence[str]) -> str:
    """The ETag Swift gives a DLO: the MD5 of its segments' ETags, joined (Swift's
    `middleware/dlo.py`)."""
    md5 = hashlib.md5(usedforsecurity=False)
    for h in hashes:
        md5.update(h.strip('"').encode())
    return md5.hexdigest()


class SegmentReads:
    """Opens DLOs of `objects` by their segments (see the module's doc); one pool of
    `THREADS` threads for all of them, made on first use."""

    def __init__(self, objects: Container):
        self.objects = objects
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool:
            pool.shutdown(cancel_futures=True)

    def _submit(self, piece: Piece) -> Future[bytes]:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="swift-segments")
            pool = self._pool
        return pool.submit(self.objects.read_range, piece.path, piece.offset, piece.length)

    def segments(self, found: LargeObjectManifest) -> list[Entry] | None:
        """The segments of the DLO `found`, if they can be read directly: listed, and the
        listing agrees with what a HEAD of the DLO says (size and ETag); else None."""
        headers = found.head or self.objects.head(found.path)  # PathNotFound if gone
        reference = headers.get("x-object-manifest") or found.reference
        try:
            listed = self.objects.named_with(reference)
        except PathNotFound:
            listed = None
        except StorageError as e:
            if isinstance(e, TransientError):
                raise
            log.info("segments of %s not listable (%s): read through Swift", found.path, e)
            return None
        if listed is None:
            log.info("segments of %s lie elsewhere (%s): read through Swift", found.path, reference)
            return None
        if len(listed) >= self.objects.session.capabilities().listing_limit:
            # Swift's HEAD joins one listing page only: it says 0 bytes and the ETag of
            # nothing, and there is nothing to check the listing against.
            return listed
        size = content_length(headers)
        etag = headers.get("etag", "").strip('"')
        listed_size = sum(e.size or 0 for e in listed)
        hashes = [e.checksum for e in listed]
        if (size is not None and size != listed_size) or (
            etag and (None in hashes or dlo_etag([h or "" for h in hashes]) != etag)
        ):
            log.info(
                "segments of %s changing (listing and HEAD differ): read through Swift", found.path
            )
            return None
        return listed

    def open(self, found: LargeObjectManifest, offset: int, length: int | None) -> BinaryIO:
        """A reader of `length` bytes (None: to the end) from `offset` of the DLO `found`,
        read by its segments where they can be (else through Swift's middleware)."""
        listed = self.segments(found)
        if listed is None:
            opened = self.objects.open(found.path, offset, length)
            assert not isinstance(opened, LargeObjectManifest)
            return opened
        todo = pieces([(e.path, e.size or 0) for e in listed], offset, length)
        return io.BufferedReader(PieceReader(found.path, todo, self._submit), CHUNK)


class PieceReader(io.RawIOBase):
    """The bytes of `todo`'s pieces in order, `AHEAD` of them requested at a time through
    `submit`. A piece whose request failed raises its error when the reader reaches it:
    a `TransientError` for one that is gone (the object was rewritten meanwhile)."""

    def __init__(self, path: str, todo: list[Piece], submit: Callable[[Piece], Future[bytes]]):
        self._path = path
        self._todo = deque(todo)
        self._submit = submit
        self._flight: deque[Future[bytes]] = deque()
        self._current = memoryview(b"")
        self._fill()

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while self._todo and len(self._flight) < AHEAD:
            self._flight.append(self._submit(self._todo.popleft()))

    def _next(self) -> bool:
        if not self._flight:
            return False
        future = self._flight.popleft()
        self._fill()
        try:
            self._current = memoryview(future.result())
        except PathNotFound as e:
            raise TransientError(
                f"a segment vanished while it was read ({e.path}): the object was rewritten",
                path=self._path,
                driver=DRIVER,
            ) from None
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._current:
            if not self._next():
                return 0
        n = min(len(buffer), len(self._current))
        buffer[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            for future in self._flight:
                future.cancel()
            self._flight.clear()
            self._todo.clear()
            self._current = memoryview(b"")
        super().close()
