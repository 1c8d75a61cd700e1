"""Streaming SFTP transfers: a request pipeline of our own, and the reader and writer built
on it. paramiko's prefetch thread cannot be stopped early, and its pipelined writes drop
the server's error replies, so transfers keep `PIPELINE` requests in flight here.

This leans on three long-standing but private paramiko methods (`_async_request`,
`_read_response`, `_convert_status`); a paramiko upgrade is checked by the SFTP tests.
"""

from __future__ import annotations

import io
import logging
import posixpath
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

import paramiko
from paramiko.sftp import CMD_DATA, CMD_READ, CMD_STATUS, CMD_WRITE, int64

from regtool.errors import RegtoolError, StorageError
from regtool.storage.base import TEMP_MARK, Writer

if TYPE_CHECKING:
    from regtool.storage.sftp import SftpDriver

log = logging.getLogger(__name__)

CHUNK = 32768  # the largest read/write every SFTP server accepts
PIPELINE = 32  # requests in flight per transfer: 1 MiB of data


class StatusClient(paramiko.SFTPClient):
    def _convert_status(self, msg: paramiko.Message) -> None:
        try:
            super()._convert_status(msg)
        except OSError as e:
            # Mark the server's error replies: paramiko raises the same bare OSError for a
            # closed socket, after which the channel is unusable.
            e.sftp_status = True  # type: ignore[attr-defined]
            raise


def is_status_reply(e: BaseException) -> bool:
    return isinstance(e, OSError) and getattr(e, "sftp_status", False)


class Pipeline:
    """Requests in flight on one channel, whose replies are taken in the order sent."""

    def __init__(self, client: paramiko.SFTPClient, handle: bytes | None = None):
        self.client, self.handle = client, handle
        self._order: deque[tuple[int, Any]] = deque()
        self._replies: dict[int, tuple[int, paramiko.Message]] = {}

    def __len__(self) -> int:
        return len(self._order)

    def send(self, tag: Any, cmd: int, *args: Any, first: bool = False) -> None:
        if self.handle is not None:
            args = (self.handle, *args)
        num = self.client._async_request(self, cmd, *args)
        (self._order.appendleft if first else self._order.append)((num, tag))

    def _async_response(self, t: int, msg: paramiko.Message, num: int) -> None:
        self._replies[num] = (t, msg)  # paramiko hands our replies over here

    def reply(self) -> tuple[Any, int, paramiko.Message]:
        num, tag = self._order.popleft()
        while num not in self._replies:
            self.client._read_response()
        t, msg = self._replies.pop(num)
        return tag, t, msg

    def status(self) -> tuple[Any, Exception | None]:
        """The oldest reply: None for success, else the error (IOError, EOFError)."""
        tag, t, msg = self.reply()
        if t != CMD_STATUS:
            return tag, paramiko.SFTPError(f"unexpected SFTP reply type {t}")
        try:
            self.client._convert_status(msg)
        except (OSError, EOFError) as e:
            return tag, e
        return tag, None


class SftpReader(io.RawIOBase):
    """Reads [offset, end) of an open remote file, PIPELINE requests ahead."""

    def __init__(
        self,
        driver: SftpDriver,
        client: paramiko.SFTPClient,
        file: paramiko.SFTPFile,
        path: str,
        offset: int,
        end: int,
    ):
        self._driver, self._client, self._file, self._path = driver, client, file, path
        self._pipe = Pipeline(client, file.handle)
        self._next, self._end = offset, end
        self._buf, self._at = b"", 0  # read-ahead, and how much of it was returned
        self._error: StorageError | None = None

    def readable(self) -> bool:
        return True

    def _chunk(self) -> bytes:
        """The next piece of the range, in order; b"" at its end."""
        while len(self._pipe) < PIPELINE and self._next < self._end:
            n = min(CHUNK, self._end - self._next)
            self._pipe.send((self._next, n), CMD_READ, int64(self._next), n)
            self._next += n
        if not self._pipe:
            return b""
        (offset, n), t, msg = self._pipe.reply()
        if t == CMD_STATUS:
            try:
                self._client._convert_status(msg)
            except EOFError:  # the file shrank since it was opened: stop here
                while self._pipe:
                    self._pipe.reply()
                self._next = self._end = offset
                return b""
        data: bytes = msg.get_string() if t == CMD_DATA else b""
        if not data:
            raise paramiko.SFTPError(f"no data in the reply for offset {offset}")
        if len(data) < n:  # a short read: fetch the rest before anything sent later
            rest = offset + len(data)
            self._pipe.send((rest, n - len(data)), CMD_READ, int64(rest), n - len(data), first=True)
        return data

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed reader")
        if self._error is not None:
            raise self._error
        whole = size is None or size < 0
        if not whole and len(self._buf) - self._at >= size:  # type: ignore[operator]
            self._at += size  # type: ignore[operator]
            return self._buf[self._at - size : self._at]  # type: ignore[operator]
        parts = [self._buf[self._at :]]
        have = len(parts[0])
        try:
            while whole or have < size:  # type: ignore[operator]
                data = self._chunk()
                if not data:
                    break
                parts.append(data)
                have += len(data)
        except Exception as e:  # the range is now incomplete: fail every later read too
            self._error = self._driver._translate(e, self._path)
            raise self._error from None
        self._buf, self._at = b"".join(parts), 0
        if whole or size >= len(self._buf):  # type: ignore[operator]
            out, self._buf = self._buf, b""
            return out
        self._at = size  # type: ignore[assignment]
        return self._buf[:size]

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        broken = self._error is not None
        try:
            if not broken:
                while self._pipe:  # leave the channel clean for its next user
                    self._pipe.reply()
                self._file.close()
        except Exception:
            broken = True
        finally:
            self._driver._release(self._client, broken=broken)
            super().close()


class SftpWriter(Writer):
    """Writes a temp file that commit renames over the target, or appends in place."""

    def __init__(self, driver: SftpDriver, client: paramiko.SFTPClient, path: str, append: bool):
        self._driver, self._client, self._path = driver, client, path
        self._target = driver._abs(path)
        self._temp: str | None = None
        if append:
            self._file = client.open(self._target, "r+b")
            self._start = self._file.stat().st_size or 0
        else:
            temp = posixpath.join(posixpath.dirname(self._target), f"{TEMP_MARK}{uuid.uuid4().hex}")
            self._file = driver._retry_in_new_dir(client, temp, lambda: client.open(temp, "wb"))
            self._temp, self._start = temp, 0
        self._pos = self._start
        self._pipe = Pipeline(client, self._file.handle)
        self._done = self._broken = False
        self._error: StorageError | None = None

    @property
    def size(self) -> int:
        return self._pos

    @contextmanager
    def _guard(self) -> Iterator[None]:
        if self._error is not None:  # content is incomplete: never commit it
            raise self._error
        try:
            yield
        except Exception as e:
            self._broken = not (is_status_reply(e) or isinstance(e, RegtoolError))
            self._error = self._driver._translate(e, self._path)
            raise self._error from None

    def _drain(self, upto: int) -> None:
        while len(self._pipe) > upto:
            error = self._pipe.status()[1]
            if error is not None:
                raise error

    def write(self, data: bytes) -> int:
        if self._done:
            raise StorageError("write to a finished writer", path=self._path, driver="sftp")
        view = memoryview(data)
        with self._guard():
            for i in range(0, len(view), CHUNK):
                self._drain(PIPELINE - 1)
                chunk = view[i : i + CHUNK].tobytes()
                self._pipe.send(None, CMD_WRITE, int64(self._pos), chunk)
                self._pos += len(chunk)
        return len(data)

    def commit(self) -> None:
        if self._done:
            return
        with self._guard():
            self._drain(0)
            self._file.close()
            if self._temp is not None:
                self._driver._rename(self._client, self._temp, self._target)
        self._done = True
        self._driver._release(self._client)

    def cancel(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            if self._broken:
                raise StorageError("the connection failed")
            while self._pipe:
                self._pipe.status()
            if self._temp is None:
                self._file.truncate(self._start)
            self._file.close()
            if self._temp is not None:
                with suppress(FileNotFoundError):
                    self._client.remove(self._temp)
        except Exception as e:  # best effort: a stray temp file is invisible to listings
            self._broken = True
            log.warning("could not undo a cancelled write to %s: %s", self._path, e)
        finally:
            self._driver._release(self._client, broken=self._broken)
