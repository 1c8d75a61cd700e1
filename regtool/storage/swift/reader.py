"""Streaming an object's body, with network faults translated as they happen."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

from regtool.errors import StorageError
from regtool.storage.swift.errors import NETWORK_ERRORS

#: Read size when streaming an object.
CHUNK = 64 * 1024


class ObjectReader(io.RawIOBase):
    """The body of a GET (swiftclient's `_ObjectBody`), `limit` bytes at most, after
    skipping `skip` bytes (what a server that ignored the Range header sent first).

    A network fault while reading raises `on_error(fault)`: a `TransientError` for a
    connection cut short, never a native error."""

    def __init__(
        self,
        body: Any,
        on_error: Callable[[BaseException], StorageError],
        skip: int = 0,
        limit: int | None = None,
    ):
        self._body, self._on_error = body, on_error
        self._skip, self._limit = skip, limit

    def readable(self) -> bool:
        return True

    def _read(self, n: int) -> bytes:
        try:
            return bytes(self._body.read(n))
        except NETWORK_ERRORS as e:
            raise self._on_error(e) from None

    def readinto(self, buffer: Any) -> int:
        while self._skip:
            self._skip -= len(self._read(min(self._skip, CHUNK))) or self._skip
        want = len(buffer) if self._limit is None else min(len(buffer), self._limit)
        data = self._read(want) if want > 0 else b""
        buffer[: len(data)] = data
        if self._limit is not None:
            self._limit -= len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(*NETWORK_ERRORS):
                self._body.close()
        super().close()
