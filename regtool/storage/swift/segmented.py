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
3. maps the range asked for onto the segments: two requests a segment, its first
   `FIRST` bytes and the rest, which spares Swift's object server the MD5 of the whole
   segment (see `FIRST`); a segment over `PIECE` bytes is read in pieces of that size
   (each request costs Swift a token check and a connection to an object server);
   several in flight while their bytes stay within `WINDOW`, handed out in order. A piece
   is read as it arrives, `READ` bytes at a time, so the reader starts on a segment
   before it has come in whole. Memory per reader is bounded by `WINDOW` (or one
   piece) whatever the segment size.

A piece that fails, or comes back short (a segment deleted or rewritten since it was
listed), raises a `TransientError` when the reader reaches it: the retry wrapper opens
the object again at the first byte not yet returned, which lists the segments anew.
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
from typing import Any, BinaryIO, cast

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

#: Most bytes one request asks for: a larger segment is read in pieces of this size.
PIECE = 32 * 1024 * 1024
#: Most bytes a request from a segment's first byte asks for. Swift's object server
#: computes the MD5 of every read that begins at byte 0 (to check the ETag once the last
#: byte is sent: too late for the bytes sent, it only quarantines a damaged file, which
#: its auditor also finds at rest), about 1.5 CPU seconds a GiB; reads that begin later
#: cost it none. So a segment is read as its first `FIRST` bytes and the rest: one
#: request more a segment, for half of the object server's CPU.
FIRST = 64 * 1024
#: Bytes of the pieces in flight per open object (requested, arriving, or come and not
#: yet read), unless one piece alone is more.
WINDOW = 64 * 1024 * 1024
#: Most pieces in flight per open object (small segments, or a short range).
AHEAD = 8
#: Bytes a fetch reads from a response at a time (one buffer), handed to the reader as
#: they come.
READ = 1024 * 1024
#: Threads that fetch pieces, shared by every reader of a driver.
THREADS = 32


@dataclass(frozen=True, slots=True)
class Piece:
    """`length` bytes of the segment at `path`, from `offset` within it."""

    path: str
    offset: int
    length: int


def pieces(
    segments: Sequence[tuple[str, int]],
    offset: int,
    length: int | None,
    piece: int = PIECE,
    first: int = FIRST,
) -> list[Piece]:
    """The pieces that hold bytes `offset` .. `offset + length` (None: to the end) of the
    object made of `segments` ((path, size in bytes), in order), each at most `piece`
    bytes, and one that begins at a segment's first byte at most `first` (see `FIRST`);
    none for a range at or past the end."""
    end = None if length is None else offset + length
    found: list[Piece] = []
    start = 0  # of the current segment within the object
    for path, size in segments:
        if end is not None and start >= end:
            break
        at, hi = max(offset, start), start + size if end is None else min(end, start + size)
        while at < hi:
            n = min(first if at == start else piece, piece, hi - at)
            found.append(Piece(path, at - start, n))
            at += n
        start += size
    return found


def dlo_etag(hashes: Sequence[str]) -> str:
    """The ETag Swift gives a DLO: the MD5 of its segments' ETags, joined (Swift's
    `middleware/dlo.py`)."""
    md5 = hashlib.md5(usedforsecurity=False)
    for h in hashes:
        md5.update(h.strip('"').encode())
    return md5.hexdigest()


class Buffers:
    """`READ`-byte buffers for fetches, given back once read and used again: fresh
    memory for every chunk costs the kernel a page fault every 4 KiB. Keeps `keep` at
    most; safe to use from several threads."""

    def __init__(self, keep: int):
        self._keep = keep
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    def get(self) -> bytearray:
        with self._lock:
            if self._free:
                return self._free.pop()
        return bytearray(READ)

    def give(self, buffer: bytearray) -> None:
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(buffer)


class Fetch:
    """One piece being read by a pool thread (`run`), its bytes handed to the reader as
    they arrive (`take`), in buffers of `buffers` the reader gives back. The whole piece
    is read however slow the reader: a response left half-read would hold Swift's
    connection (and this thread) until it timed out."""

    def __init__(self, piece: Piece, buffers: Buffers):
        self.piece = piece
        self.buffers = buffers
        self._arrived = threading.Condition()
        self._chunks: deque[tuple[bytearray, int]] = deque()
        self._done = False
        self._error: BaseException | None = None
        self._cancelled = False

    def run(self, open_range: Callable[[str, int, int], BinaryIO]) -> None:
        """Read the piece with `open_range(path, offset, length)` (a streaming reader)."""
        piece, got, error = self.piece, 0, None
        try:
            if not self._cancelled:
                with open_range(piece.path, piece.offset, piece.length) as body:
                    reader = cast(io.BufferedIOBase, body)  # Container.open's readers
                    while got < piece.length and not self._cancelled:
                        buffer = self.buffers.get()
                        n = reader.readinto(memoryview(buffer)[: piece.length - got])
                        if not n:
                            self.buffers.give(buffer)
                            break
                        got += n
                        with self._arrived:
                            self._chunks.append((buffer, n))
                            self._arrived.notify()
            if got < piece.length and not self._cancelled:
                raise TransientError(
                    f"{got} bytes where {piece.length} were expected at offset "
                    f"{piece.offset}: the object changed while it was read",
                    path=piece.path,
                    driver=DRIVER,
                )
        except BaseException as e:  # handed to the reader, in its thread
            error = e
        with self._arrived:
            self._done, self._error = True, error
            self._arrived.notify()

    def take(self) -> tuple[bytearray, int] | None:
        """The next bytes of the piece (a buffer and how many bytes of it hold them; the
        buffer goes back to `buffers` once read), waiting for them; None once all are
        taken. Raises what failed the fetch once the bytes that came before are taken."""
        with self._arrived:
            self._arrived.wait_for(lambda: self._chunks or self._done)
            if self._chunks:
                return self._chunks.popleft()
            if self._error is not None:
                raise self._error
            return None

    def ended(self, future: Future[None]) -> None:
        """`run`'s future is done: if it never ran (the driver was closed before a thread
        took it), the reader must not wait for it."""
        if future.cancelled():
            with self._arrived:
                self._done = True
                self._error = StorageError(
                    "the driver was closed while an object was read",
                    path=self.piece.path,
                    driver=DRIVER,
                )
                self._arrived.notify()

    def cancel(self) -> None:
        """The reader is gone: stop after the bytes under way, and drop what came."""
        with self._arrived:
            self._cancelled = True
            chunks, self._chunks = self._chunks, deque()
        for buffer, _ in chunks:
            self.buffers.give(buffer)


class SegmentReads:
    """Opens DLOs of `objects` by their segments (see the module's doc); one pool of
    `THREADS` threads for all of them, made on first use."""

    def __init__(self, objects: Container):
        self.objects = objects
        self.buffers = Buffers(keep=WINDOW // READ)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool:
            pool.shutdown(cancel_futures=True)

    def _start(self, piece: Piece) -> Fetch:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="swift-segments")
            pool = self._pool
        fetch = Fetch(piece, self.buffers)
        pool.submit(fetch.run, self._open_range).add_done_callback(fetch.ended)
        return fetch

    def _open_range(self, path: str, offset: int, length: int) -> BinaryIO:
        opened = self.objects.open(path, offset, length)
        assert not isinstance(opened, LargeObjectManifest)  # only with follow=False
        return opened

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
        return io.BufferedReader(PieceReader(found.path, todo, self._start), CHUNK)


class PieceReader(io.RawIOBase):
    """The bytes of `todo`'s pieces in order, each fetched through `start`, as many at a
    time as `ahead` (pieces) and `window` (their bytes in all) allow, at least one. A
    piece whose fetch failed raises its error when the reader reaches it: a
    `TransientError` for one that is gone (the object was rewritten meanwhile)."""

    def __init__(
        self,
        path: str,
        todo: list[Piece],
        start: Callable[[Piece], Fetch],
        ahead: int = AHEAD,
        window: int = WINDOW,
    ):
        self._path = path
        self._todo = deque(todo)
        self._start = start
        self._ahead, self._window = ahead, window
        self._flight: deque[Fetch] = deque()  # the first is being read
        self._current = memoryview(b"")
        # the buffer under `_current`, and where it goes back once read
        self._buffer: tuple[Buffers, bytearray] | None = None
        self._fill()

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        held = sum(f.piece.length for f in self._flight)
        while self._todo and len(self._flight) < self._ahead:
            if self._flight and held + self._todo[0].length > self._window:
                break
            fetch = self._start(self._todo.popleft())
            self._flight.append(fetch)
            held += fetch.piece.length

    def _next(self) -> bool:
        self._give_back()
        while self._flight:
            try:
                chunk = self._flight[0].take()
            except PathNotFound as e:
                raise TransientError(
                    f"a segment vanished while it was read ({e.path}): the object was rewritten",
                    path=self._path,
                    driver=DRIVER,
                ) from None
            if chunk is not None:
                buffer, n = chunk
                self._buffer = self._flight[0].buffers, buffer
                self._current = memoryview(buffer)[:n]
                return True
            self._flight.popleft()
            self._fill()
        return False

    def readinto(self, buffer: Any) -> int:
        if not self._current and not self._next():
            return 0
        n = min(len(buffer), len(self._current))
        buffer[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def _give_back(self) -> None:
        self._current = memoryview(b"")
        held, self._buffer = self._buffer, None
        if held is not None:
            held[0].give(held[1])

    def close(self) -> None:
        if not self.closed:
            self._give_back()
            for fetch in self._flight:
                fetch.cancel()
            self._flight.clear()
            self._todo.clear()
            self._current = memoryview(b"")
        super().close()
