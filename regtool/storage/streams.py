"""Small stream adapters shared by the drivers and the retry wrapper."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any, BinaryIO

from regtool.errors import TransientError


def _readinto(stream: BinaryIO, buffer: Any, *, once: bool = False) -> int:
    """`stream.readinto(buffer)` where the stream has it, else a read and a copy. With
    `once`, a buffered stream reads from what is under it at most once (`readinto1`), so
    that what it got before a fault is returned rather than lost with the fault."""
    readinto = (once and getattr(stream, "readinto1", None)) or getattr(stream, "readinto", None)
    if readinto is not None:
        return int(readinto(buffer) or 0)
    data = stream.read(len(buffer))
    buffer[: len(data)] = data
    return len(data)


class LimitedReader(io.RawIOBase):
    """Reads at most `limit` bytes from `inner`, then reports end of stream."""

    def __init__(self, inner: BinaryIO, limit: int):
        self._inner = inner
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer).cast("B")
        n = _readinto(self._inner, view[: min(len(view), self._left)])
        self._left -= n
        return n

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


#: Opens the stream again `done` bytes into the range the reader covers.
Reopen = Callable[[int], BinaryIO]
#: Called before each re-open with the fault and the faults in a row since the last byte
#: was read; it waits, or raises (the fault itself) when there is no attempt left.
Pause = Callable[[TransientError, int], None]


class ResumingReader(io.RawIOBase):
    """A reader that, when the stream under it fails with a `TransientError` (a dropped
    connection, a timeout), opens it again at the first byte not yet returned and goes
    on: a fault in the middle of a large blob costs a retry, not the whole transfer.

    The bytes returned are always a prefix of the range, in order: a stream that failed
    part-way through one read is dropped with whatever it had buffered, and that part is
    read again. Resuming assumes the content did not change between the opens, which
    holds for what is read in bulk (blobs are immutable under their digest; an upload is
    only appended to). Any other error (a missing path, a refused permission) ends the
    stream as it would without this reader.
    """

    #: Most bytes asked of the stream at once: a fault loses at most this much progress.
    STEP = 256 * 1024

    def __init__(self, first: BinaryIO, reopen: Reopen, pause: Pause):
        self._inner: BinaryIO | None = first
        self._reopen, self._pause = reopen, pause
        self._done = 0  # bytes returned so far
        self._faults = 0  # faults in a row since the last byte returned

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("read from a closed reader")
        view = memoryview(buffer).cast("B")[: self.STEP]
        while True:
            try:
                if self._inner is None:
                    self._inner = self._reopen(self._done)
                n = _readinto(self._inner, view, once=True)
            except TransientError as e:
                self._drop()
                self._faults += 1
                self._pause(e, self._faults)
                continue
            if n:
                self._done += n
                self._faults = 0
            return n

    def _drop(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            with contextlib.suppress(Exception):  # it failed already; its close may too
                inner.close()

    def close(self) -> None:
        if not self.closed:
            inner, self._inner = self._inner, None
            try:
                if inner is not None:
                    inner.close()
            finally:
                super().close()
