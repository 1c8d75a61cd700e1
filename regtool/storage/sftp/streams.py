"""The driver's streaming reader and writer, each holding one leased channel until closed.

Both fail for good after their first error (a reader whose range is incomplete, a writer
whose content is incomplete): the error is raised again by every later call, and a
writer never commits after one. A lost connection is a `TransientError`; the retry
wrapper above the driver reopens a reader at its offset.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from regtool.errors import StorageError
from regtool.storage.base import Writer
from regtool.storage.sftp import confine, files
from regtool.storage.sftp.capabilities import Renaming
from regtool.storage.sftp.connection import Lease
from regtool.storage.sftp.errors import DRIVER, channel_survives
from regtool.storage.sftp.protocol import RemoteFile
from regtool.storage.sftp.transfer import HandleWriter, RangeReader

log = logging.getLogger(__name__)


class SftpReader(io.RawIOBase):
    """Reads bytes [offset, end) of an open remote file (`path` for messages)."""

    def __init__(self, lease: Lease, file: RemoteFile, path: str, offset: int, end: int):
        self._lease, self._file, self._path = lease, file, path
        self._range = RangeReader(file, offset, end, lease.capabilities.read_chunk)
        self._buf, self._at = b"", 0  # read-ahead, and how much of it was returned
        self._error: StorageError | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed reader")
        if self._error is not None:
            raise self._error
        want = None if size is None or size < 0 else size
        if want is not None and len(self._buf) - self._at >= want:
            self._at += want
            return self._buf[self._at - want : self._at]
        parts = [self._buf[self._at :]]
        have = len(parts[0])
        try:
            while want is None or have < want:
                data = self._range.next_chunk()
                if not data:
                    break
                parts.append(data)
                have += len(data)
        except Exception as e:  # the range is now incomplete: fail every later read too
            self._error = self._lease.translate(e, self._path)
            raise self._error from None
        self._buf, self._at = b"".join(parts), 0
        if want is None or want >= len(self._buf):
            out, self._buf = self._buf, b""
            return out
        self._at = want
        return self._buf[:want]

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
                self._range.drain()  # leave the channel clean for its next user
                self._file.close()
        except Exception:
            broken = True
        finally:
            self._lease.release(broken=broken)
            super().close()


class SftpWriter(Writer):
    """Writes `path` (absolute `target`, whose place the caller checked to be in the
    root's real path `root`, except when appending: checked here, as the file opens):
    to a temporary file that commit moves over the target, or in place when appending
    or when the server cannot rename (`Renaming.NONE`: the content can be seen before
    commit, and cancel removes it)."""

    def __init__(self, lease: Lease, path: str, target: str, append: bool, root: str):
        self._lease, self._path, self._target = lease, path, target
        client = lease.client
        self._temp: str | None = None
        self._in_place = not append and lease.renaming is Renaming.NONE
        if append:
            real, self._file = client.open_resolving(target, "r+")
            try:
                confine.check(real, root, path)  # before a byte is written
            except BaseException:
                with suppress(Exception):
                    self._file.close()
                raise
            self._start = self._file.stat().st_size or 0
        else:
            name = target if self._in_place else files.temp_name(target)
            self._file = files.in_new_dir(client, name, lambda: client.open_file(name, "w"))
            self._temp = None if self._in_place else name
            self._start = 0
        self._out = HandleWriter(self._file, self._start, lease.capabilities.write_chunk)
        self._done = self._broken = False
        self._error: StorageError | None = None

    @property
    def size(self) -> int:
        return self._out.position

    @contextmanager
    def _guard(self) -> Iterator[None]:
        if self._error is not None:  # content is incomplete: never commit it
            raise self._error
        try:
            yield
        except Exception as e:
            self._broken = not channel_survives(e)
            self._error = self._lease.translate(e, self._path)
            raise self._error from None

    def write(self, data: bytes) -> int:
        if self._done:
            raise StorageError("write to a finished writer", path=self._path, driver=DRIVER)
        with self._guard():
            self._out.write(data)
        return len(data)

    def commit(self) -> None:
        if self._done:
            return
        with self._guard():
            self._out.flush()
            self._file.close()
            if self._temp is not None:
                files.move(self._lease, self._temp, self._target)
        self._done = True
        self._lease.release()

    def cancel(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            if self._broken:
                raise StorageError("the connection failed")
            self._out.discard()
            if self._temp is None and not self._in_place:
                self._file.truncate(self._start)  # take the appended bytes away
            with suppress(Exception):
                self._file.close()
            if self._temp is not None or self._in_place:
                with suppress(FileNotFoundError):
                    self._lease.client.remove(self._temp or self._target)
        except Exception as e:  # best effort: a stray temp file is invisible to listings
            self._broken = True
            why = self._lease.translate(e, self._path)  # in words, not paramiko's EOFError()
            log.warning("could not undo a cancelled write to %s: %s", self._path, why)
        finally:
            self._lease.release(broken=self._broken)
