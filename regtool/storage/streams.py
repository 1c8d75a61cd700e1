"""Small stream adapters shared by the drivers."""

from __future__ import annotations

import io
from typing import BinaryIO


class LimitedReader(io.RawIOBase):
    """Reads at most `limit` bytes from `inner`, then reports end of stream."""

    def __init__(self, inner: BinaryIO, limit: int):
        self._inner = inner
        self._left = limit

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._inner.read(want)
        self._left -= len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()
