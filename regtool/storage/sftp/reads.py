"""Reading many small files on one SFTP channel, every file's requests in flight at once.

`get` reads a file in two round trips (REALPATH, OPEN and STAT together; then the READs
and the CLOSE), so files read one after another, or a few at a time on the pool's
channels, cost two round trips each per channel. Here the first three requests of every
file go out together, and each file's READs and CLOSE as soon as its handle is back: a
batch costs about two round trips, whatever its size. The requests of a batch are bounded
as a walk's are (`walk.IN_FLIGHT`; at most half as many files open at once, fewer if the
server says it keeps fewer handles open).

Each path is checked to be inside the root (`confine`) before its content is trusted; a
file found larger than `SMALL`, or not as its STAT said (it grew or shrank while read),
is left for the caller to read alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from stat import S_ISDIR
from typing import Any

import paramiko

from regtool.errors import PathNotFound, StorageError
from regtool.storage.sftp import confine
from regtool.storage.sftp.errors import DRIVER
from regtool.storage.sftp.protocol import (
    CMD_CLOSE,
    CMD_DATA,
    CMD_OPEN,
    CMD_READ,
    CMD_REALPATH,
    CMD_STAT,
    CMD_STATUS,
    OPEN_FLAGS,
    Attributes,
    EndOfFile,
    Real,
    SftpChannel,
    StatusReply,
    attrs_reply,
    handle_reply,
    int64,
    real_reply,
    status_error,
)
from regtool.storage.sftp.walk import IN_FLIGHT

#: Files of up to this many bytes are read in the batch; larger ones are left to `open`.
SMALL = 1024 * 1024

#: What a file's reading came to: its content, why it cannot be read (a StorageError,
#: PathNotFound among them), or None: read it alone (large, or changing while read).
Outcome = bytes | StorageError | None

_NO_ATTRS = paramiko.SFTPAttributes()  # an OPEN's: none to set

#: Turns an error status about a driver path into the StorageError to raise.
Translate = Callable[[Exception, str], StorageError]


@dataclass(eq=False)
class _File:
    path: str  # driver path
    target: str  # on the server
    real: Real | None = None
    handle: bytes | StatusReply | None = None
    attrs: Attributes | None = None
    parts: list[bytes] = field(default_factory=list)
    at: int = 0  # where the next part must start
    ended: bool = False  # a READ answered "end of file"
    whole: bool = True
    failed: StorageError | None = None
    reads: int = 0  # READs in flight


class ManyReads:
    """Reads `files` ((driver path, path on the server) pairs) on `client`: `run()` gives
    each driver path's `Outcome`. `root` is the root's real path. The connection's own
    errors are raised as they come; a batch left by one leaves requests in flight: the
    channel must not be used again."""

    def __init__(
        self,
        client: SftpChannel,
        root: str,
        files: list[tuple[str, str]],
        translate: Translate,
        *,
        read_chunk: int,
        in_flight: int | None = None,
        open_handles: int | None = None,
    ):
        self.client, self.root, self.translate = client, root, translate
        self.chunk = read_chunk
        self.in_flight = max(in_flight or IN_FLIGHT, 8)
        self.most_open = self.in_flight // 2
        if open_handles:
            self.most_open = max(1, min(self.most_open, open_handles))
        self.pipe = client.pipeline()
        self._todo = deque(_File(path, target) for path, target in files)
        self._outbox: deque[tuple[tuple[str, _File, int], int, tuple[Any, ...], int]] = deque()
        self._open = 0
        self.outcomes: dict[str, Outcome] = {}

    @property
    def round_trips(self) -> int:
        """Round trips on the longest chain of requests (`Pipeline.round_trips`)."""
        return self.pipe.round_trips

    def run(self) -> dict[str, Outcome]:
        while True:
            with self.client.together():
                self._send()
            if not self.pipe:
                return self.outcomes
            self._answer(*self.pipe.reply())
            while self.pipe.ready() and len(self._outbox) < self.in_flight:
                self._answer(*self.pipe.reply())

    def _send(self) -> None:
        """Follow-ups first (they end files, freeing handles), then new files."""
        while self._outbox and len(self.pipe) < self.in_flight:
            tag, cmd, args, after = self._outbox.popleft()
            self.pipe.send(tag, cmd, *args, after=after)
        while self._todo and self._open < self.most_open and len(self.pipe) + 3 <= self.in_flight:
            f = self._todo.popleft()
            self._open += 1
            self.pipe.send(("real", f, 0), CMD_REALPATH, f.target, after=0)
            flags = OPEN_FLAGS["r"]
            self.pipe.send(("open", f, 0), CMD_OPEN, f.target, flags, _NO_ATTRS, after=0)
            self.pipe.send(("stat", f, 0), CMD_STAT, f.target, after=0)

    def _queue(self, tag: tuple[str, _File, int], cmd: int, *args: Any) -> None:
        self._outbox.append((tag, cmd, args, self.pipe.trip))

    def _answer(self, tag: tuple[str, _File, int], t: int, msg: Any) -> None:
        kind, f, offset = tag
        if kind == "real":
            f.real = real_reply(t, msg)
        elif kind == "open":
            f.handle = handle_reply(t, msg)
        elif kind == "stat":
            f.attrs = attrs_reply(t, msg)
            self._opened(f)
        elif kind == "read":
            self._read(f, offset, t, msg)
        else:  # "close"
            self._open -= 1
            if t == CMD_STATUS and (error := status_error(msg.get_int(), msg.get_text())):
                f.failed = f.failed or self.translate(error, f.path)
            self._done(f)

    def _opened(self, f: _File) -> None:
        """The file's REALPATH, OPEN and STAT are answered: read it, or close it unread."""
        size = None
        try:
            assert f.real is not None and f.attrs is not None
            confine.check(f.real, self.root, f.path)
            if isinstance(f.handle, StatusReply):
                raise f.handle
            if isinstance(f.attrs, StatusReply):
                raise f.attrs
            if S_ISDIR(f.attrs.st_mode or 0):  # OpenSSH opens directories
                raise PathNotFound(f.path, driver=DRIVER)
            size = f.attrs.st_size or 0
        except (StatusReply, StorageError) as e:
            f.failed = e if isinstance(e, StorageError) else self.translate(e, f.path)
        if not isinstance(f.handle, bytes):
            self._open -= 1
            self._done(f)
            return
        if size is not None and size <= SMALL:
            # READs for [0, size) and one at `size`, which must answer "end of file"
            for at in (*range(0, size, self.chunk), size):
                self._queue(("read", f, at), CMD_READ, f.handle, int64(at), self.chunk)
                f.reads += 1
        elif size is not None:
            f.whole = False  # large: the caller streams it
        self._queue(("close", f, 0), CMD_CLOSE, f.handle)

    def _read(self, f: _File, offset: int, t: int, msg: Any) -> None:
        if t == CMD_STATUS:
            error = status_error(msg.get_int(), msg.get_text())
            if isinstance(error, EndOfFile):
                f.ended = True
            elif f.failed is None:
                f.failed = self.translate(error or StorageError("no data"), f.path)
            return
        data: bytes = msg.get_string() if t == CMD_DATA else b""
        if f.ended or offset != f.at or not data:
            f.whole = False  # data after the end, a gap, or a reply of another type
        f.parts.append(data)
        f.at = offset + len(data)

    def _done(self, f: _File) -> None:
        if f.failed is not None:
            self.outcomes[f.path] = f.failed
        elif f.whole and f.ended:
            self.outcomes[f.path] = b"".join(f.parts)
        else:
            self.outcomes[f.path] = None
