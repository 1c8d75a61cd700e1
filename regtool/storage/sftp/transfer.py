"""Pipelined reads and writes on an open remote file, and a copy built on them.

paramiko's prefetch thread cannot be stopped early and its pipelined writes drop the
server's error replies, so transfers keep their own requests in flight: about
`IN_FLIGHT` bytes, in chunks as large as the server allows (`Capabilities.read_chunk`,
`write_chunk`). These classes raise native errors (paramiko's, `StatusReply`); the
streams above them translate.
"""

from __future__ import annotations

from contextlib import suppress

from regtool.storage.sftp.capabilities import Capabilities
from regtool.storage.sftp.protocol import (
    CMD_DATA,
    CMD_READ,
    CMD_STATUS,
    CMD_WRITE,
    EndOfFile,
    RemoteFile,
    SftpChannel,
    SFTPError,
    int64,
    status_error,
)

#: Bytes requested ahead of the reader, or written ahead of the server's replies: an SSH
#: channel's window (paramiko's and OpenSSH's default, 2 MiB), past which the other side
#: waits anyway (benchmarks/sftp_transfer.py).
IN_FLIGHT = 2 * 1024 * 1024


def depth(chunk: int) -> int:
    """Requests in flight for chunks of `chunk` bytes: IN_FLIGHT's worth, at least 4."""
    return max(4, IN_FLIGHT // chunk)


class RangeReader:
    """Reads bytes [offset, end) of an open file, in order, requests ahead of the caller."""

    def __init__(self, file: RemoteFile, offset: int, end: int, chunk: int):
        self._pipe = file.pipeline()
        self._next, self._end = offset, end
        self._chunk, self._depth = chunk, depth(chunk)

    def next_chunk(self) -> bytes:
        """The next piece of the range; b"" at its end, or where the file now ends."""
        while len(self._pipe) < self._depth and self._next < self._end:
            n = min(self._chunk, self._end - self._next)
            self._pipe.send((self._next, n), CMD_READ, int64(self._next), n)
            self._next += n
        if not self._pipe:
            return b""
        (offset, n), t, msg = self._pipe.reply()
        if t == CMD_STATUS:
            error = status_error(msg.get_int(), msg.get_text())
            if isinstance(error, EndOfFile):  # the file shrank since it was opened
                self.drain()
                self._next = self._end = offset
                return b""
            if error is not None:
                raise error
        data: bytes = msg.get_string() if t == CMD_DATA else b""
        if not data:
            raise SFTPError(f"no data in the reply for offset {offset}")
        if len(data) < n:  # a short read: fetch the rest before anything sent later
            rest = offset + len(data)
            self._pipe.send((rest, n - len(data)), CMD_READ, int64(rest), n - len(data), first=True)
        return data

    def drain(self) -> None:
        """Take the replies still due, so the channel is clean for its next user."""
        while self._pipe:
            self._pipe.reply()


class HandleWriter:
    """Writes to an open file from `position` on, requests ahead of the server's replies.
    The first error reply is raised (by `write` or `flush`)."""

    def __init__(self, file: RemoteFile, position: int, chunk: int):
        self._pipe = file.pipeline()
        self.position = position
        self._chunk, self._depth = chunk, depth(chunk)

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        for i in range(0, len(view), self._chunk):
            self._settle(self._depth - 1)
            piece = view[i : i + self._chunk].tobytes()
            self._pipe.send(None, CMD_WRITE, int64(self.position), piece)
            self.position += len(piece)

    def flush(self) -> None:
        """Wait until the server acknowledged every write."""
        self._settle(0)

    def discard(self) -> None:
        """Take every reply due, errors or not (the write is being abandoned)."""
        while self._pipe:
            self._pipe.status()

    def _settle(self, upto: int) -> None:
        while len(self._pipe) > upto:
            error = self._pipe.status()[1]
            if error is not None:
                raise error


def copy_file(client: SftpChannel, capabilities: Capabilities, source: str, target: str) -> None:
    """Copy the file `source` over `target` (absolute paths), read and written again through
    this client, in place: for servers that cannot rename (see `files.move`)."""
    src = client.open_file(source, "r")
    try:
        size = src.stat().st_size or 0
        dst = client.open_file(target, "w")
        reader = RangeReader(src, 0, size, capabilities.read_chunk)
        writer = HandleWriter(dst, 0, capabilities.write_chunk)
        try:
            while data := reader.next_chunk():
                writer.write(data)
            writer.flush()
        except BaseException:
            with suppress(Exception):  # leave the channel clean if it still works
                writer.discard()
                reader.drain()
                dst.close()
            raise
        dst.close()  # an error reply here means the copy is not stored
    finally:
        with suppress(Exception):
            src.close()
