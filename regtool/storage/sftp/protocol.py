"""The paramiko boundary: an SFTP channel that keeps what the server announced, error
replies told apart from a dead connection, and a pipeline of requests in flight.

paramiko drops the extension pairs of the server's SSH_FXP_VERSION, keeps only a few
status codes (as errnos), swallows the server's reply to closing a file, and its
pipelined writes drop the server's error replies. So this module uses paramiko's private
`SFTPClient` methods: it replaces `_send_version`, `_convert_status`, `_write_all` (to
write several requests at once) and `_read_all` (to read many replies at once), and
calls `_async_request`, `_read_response`, `_send_packet`, `_read_packet` (unchanged
from paramiko 2.x to 5.x; `_PrivateApi` states the signatures relied on) and
`SFTPAttributes._from_msg`; to start the SFTP subsystem with a timeout
(`start_subsystem`), `Channel`'s `lock`, `event`, `event_ready`, `_event_pending` and
`Transport._send_user_message`. No other module touches a private paramiko name; the
SFTP tests check each paramiko upgrade, and pyproject.toml pins paramiko below its next
major version.

Formats: SFTP version 3 (draft-ietf-secsh-filexfer-02, which OpenSSH and most servers
speak) and OpenSSH's PROTOCOL file, section 4, for the `...@openssh.com` extensions.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, cast

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message
from paramiko.sftp import (
    CMD_ATTRS,
    CMD_CLOSE,
    CMD_DATA,
    CMD_EXTENDED,
    CMD_EXTENDED_REPLY,
    CMD_FSETSTAT,
    CMD_FSTAT,
    CMD_HANDLE,
    CMD_INIT,
    CMD_NAME,
    CMD_OPEN,
    CMD_OPENDIR,
    CMD_READ,
    CMD_READDIR,
    CMD_REALPATH,
    CMD_STAT,
    CMD_STATUS,
    CMD_VERSION,
    CMD_WRITE,
    SFTP_CONNECTION_LOST,
    SFTP_EOF,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_EXCL,
    SFTP_FLAG_READ,
    SFTP_FLAG_TRUNC,
    SFTP_FLAG_WRITE,
    SFTP_NO_CONNECTION,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
    SFTPError,
    int64,
)

__all__ = [
    "CMD_CLOSE",
    "CMD_DATA",
    "CMD_OPEN",
    "CMD_OPENDIR",
    "CMD_READ",
    "CMD_READDIR",
    "CMD_REALPATH",
    "CMD_STAT",
    "CMD_STATUS",
    "CMD_WRITE",
    "SFTP_CONNECTION_LOST",
    "SFTP_NO_CONNECTION",
    "SFTP_OP_UNSUPPORTED",
    "SFTP_PERMISSION_DENIED",
    "Attributes",
    "EndOfFile",
    "Limits",
    "NoSuchFile",
    "PermissionDenied",
    "Pipeline",
    "Real",
    "RemoteFile",
    "RequestFailed",
    "SFTPError",
    "SftpChannel",
    "StatusReply",
    "attrs_reply",
    "handle_reply",
    "int64",
    "names_reply",
    "real_reply",
    "start_subsystem",
    "status_error",
]

CLIENT_VERSION = 3  # the SFTP version paramiko speaks
READ_AHEAD = 64 * 1024  # bytes asked of the channel at a time when reading replies

#: open() modes: SSH_FXF_* flags (filexfer-02 section 6.3)
OPEN_FLAGS = {
    "r": SFTP_FLAG_READ,
    "r+": SFTP_FLAG_READ | SFTP_FLAG_WRITE,
    "w": SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_TRUNC,
    "x": SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL,  # fails if the file exists
}


class StatusReply(Exception):
    """The server answered a request with an error status (SSH_FXP_STATUS): the request
    failed, the channel is fine. `code` is the SSH_FX_* number, `args` as for OSError.

    Subclasses keep the builtin types paramiko's callers expect: `NoSuchFile` is a
    FileNotFoundError, `PermissionDenied` a PermissionError, `EndOfFile` an EOFError."""

    code: int = 0


class NoSuchFile(StatusReply, FileNotFoundError):
    code = SFTP_NO_SUCH_FILE


class PermissionDenied(StatusReply, PermissionError):
    code = SFTP_PERMISSION_DENIED


class EndOfFile(StatusReply, EOFError):
    code = SFTP_EOF


class RequestFailed(StatusReply, OSError):
    """Every other error status; v3 says "Failure" (code 4) for most things, including
    an existing target of a rename and an existing directory for mkdir."""


#: Where a REALPATH says a path really is, or the error status it answered instead.
Real = str | StatusReply
#: What a STAT says is at a path, or the error status it answered instead.
Attributes = paramiko.SFTPAttributes | StatusReply


def status_error(code: int, text: str) -> StatusReply | None:
    """The exception for an SSH_FXP_STATUS reply, None for SSH_FX_OK."""
    if code == SFTP_OK:
        return None
    if code == SFTP_EOF:
        return EndOfFile(text)
    if code == SFTP_NO_SUCH_FILE:
        return NoSuchFile(errno.ENOENT, text)
    if code == SFTP_PERMISSION_DENIED:
        return PermissionDenied(errno.EACCES, text)
    error = RequestFailed(text)
    error.code = code
    return error


@dataclass(frozen=True)
class Limits:
    """The reply to `limits@openssh.com`: largest packet, read and write in bytes, and the
    most open handles; 0 means no limit given."""

    max_packet: int
    max_read: int
    max_write: int
    max_open_handles: int


class _PrivateApi(Protocol):
    """The private `paramiko.SFTPClient` methods used here, as paramiko defines them."""

    def _async_request(self, fileobj: object, t: int, *args: Any) -> int: ...
    def _read_response(self, waitfor: int | None = None) -> tuple[int | None, Any]: ...
    def _send_packet(self, t: int, packet: Message) -> None: ...
    def _read_packet(self) -> tuple[int, bytes]: ...
    def _write_all(self, out: bytes) -> None: ...


class SftpChannel(paramiko.SFTPClient):
    """A paramiko `SFTPClient` (one SFTP session on one SSH channel) that keeps the server's
    protocol version and extensions (`{"posix-rename@openssh.com": b"1", ...}`) and raises
    `StatusReply` subclasses for the server's error replies, so that a failed request is
    never confused with a closed socket (paramiko raises a bare OSError for both).

    Not thread-safe: one user at a time (the driver's pool lends channels)."""

    version: int
    extensions: dict[str, bytes]
    _held: list[bytes] | None = None  # requests sent inside `together()`, not yet written
    _inbox: bytearray | None = None  # bytes read from the channel, not yet parsed

    def _private(self) -> _PrivateApi:
        return cast(_PrivateApi, self)

    # -- paramiko's hooks, replaced ------------------------------------------------------

    def _send_version(self) -> int:
        """SSH_FXP_INIT, then SSH_FXP_VERSION: uint32 version, then (name, data) string
        pairs to the end of the packet, one per extension (filexfer-02 section 4)."""
        init = Message()
        init.add_int(CLIENT_VERSION)
        self._private()._send_packet(CMD_INIT, init)
        t, data = self._private()._read_packet()
        if t != CMD_VERSION:
            raise SFTPError("Incompatible sftp protocol")
        msg = Message(data)
        self.version = msg.get_int()
        extensions: dict[str, bytes] = {}
        while msg.get_remainder():
            name = msg.get_string().decode("utf-8", "replace")
            extensions[name] = msg.get_string()
        self.extensions = extensions
        return self.version

    def _write_all(self, out: bytes) -> None:
        """paramiko writes each request it sends with this (BaseSFTP's, replaced)."""
        if self._held is None:
            cast(Any, super())._write_all(out)
        else:
            self._held.append(out)

    def _read_all(self, n: int) -> bytes:
        """paramiko reads each reply with this, a field at a time (BaseSFTP's, replaced):
        here from bytes taken off the channel as many as have arrived, not a `recv` per
        field, each of which hands the GIL to paramiko's transport thread and back.
        EOFError once the channel is closed; the channel's timeout as `recv` raises it."""
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = bytearray()
        while len(inbox) < n:
            data = self.sock.recv(max(n - len(inbox), READ_AHEAD))
            if not data:
                raise EOFError()
            inbox += data
        out = bytes(inbox[:n])
        del inbox[:n]
        return out

    def _convert_status(self, msg: Message) -> None:
        code, text = msg.get_int(), msg.get_text()
        error = status_error(code, text)
        if error is not None:
            raise error

    # -- for the rest of the driver -------------------------------------------------------

    @property
    def channel(self) -> paramiko.Channel:
        return self.sock

    @contextmanager
    def together(self) -> Iterator[None]:
        """The requests sent inside go out in one write as it ends: one SSH packet (of up
        to 32 KiB) for many requests, not one each, which spares the client's CPU and the
        GIL what paramiko's sending costs per packet. Nothing inside may wait for a reply
        (none of the requests has been sent yet). Left by an error, the requests are
        dropped unsent: the channel must not be used again."""
        if self._held is not None:  # inside another
            yield
            return
        self._held = []
        try:
            yield
        except BaseException:
            self._held = None
            raise
        out, self._held = b"".join(self._held), None
        if out:
            self._write_all(out)

    def pipeline(self, handle: bytes | None = None) -> Pipeline:
        """A new pipeline on this channel; with `handle`, each request starts with it."""
        return Pipeline(self, handle)

    def request(self, cmd: int, *args: Any) -> tuple[int, Message]:
        """One request and its reply (type, message after the id); an error status is
        raised as `StatusReply`."""
        pipe = self.pipeline()
        pipe.send(None, cmd, *args)
        _, t, msg = pipe.reply()
        if t == CMD_STATUS:
            self._convert_status(msg)
        return t, msg

    def open_file(self, path: str, mode: str) -> RemoteFile:
        """Open `path`; `mode` is a key of OPEN_FLAGS ("x": create, failing if it exists)."""
        t, msg = self.request(CMD_OPEN, path, OPEN_FLAGS[mode], paramiko.SFTPAttributes())
        if t != CMD_HANDLE:
            raise SFTPError(f"unexpected reply type {t} to open")
        return RemoteFile(self, msg.get_binary())

    def realpaths(self, paths: Sequence[str]) -> list[Real]:
        """SSH_FXP_REALPATH of every path, all in flight at once (one round trip): where
        the server says each one is, links resolved (OpenSSH allows a missing last
        component), or the error status it answered."""
        pipe = self.pipeline()
        for path in paths:
            pipe.send(None, CMD_REALPATH, path)
        return [real_reply(*pipe.reply()[1:]) for _ in paths]

    def resolving(self, path: str, cmd: int, *args: Any) -> tuple[Real, int, Message]:
        """REALPATH of `path` and request `cmd` sent together, so that the check costs no
        round trip: where `path` really is (or the error status), and the request's reply
        (type, message; an error status is not raised)."""
        pipe = self.pipeline()
        pipe.send(None, CMD_REALPATH, path)
        pipe.send(None, cmd, *args)
        real = real_reply(*pipe.reply()[1:])
        _, t, msg = pipe.reply()
        return real, t, msg

    def open_resolving(self, path: str, mode: str) -> tuple[Real, RemoteFile]:
        """`open_file(path, mode)` and where `path` really is, in one round trip."""
        real, t, msg = self.resolving(path, CMD_OPEN, path, OPEN_FLAGS[mode], _no_attributes())
        if t == CMD_STATUS:
            self._convert_status(msg)
        if t != CMD_HANDLE:
            raise SFTPError(f"unexpected reply type {t} to open")
        return real, RemoteFile(self, msg.get_binary())

    def stat_resolving(self, path: str) -> tuple[Real, paramiko.SFTPAttributes]:
        """`stat(path)` (links followed) and where `path` really is, in one round trip."""
        real, t, msg = self.resolving(path, CMD_STAT, path)
        if t == CMD_STATUS:
            self._convert_status(msg)
        if t != CMD_ATTRS:
            raise SFTPError(f"unexpected reply type {t} to stat")
        return real, attributes(msg)

    def resolve(self, paths: Sequence[str]) -> list[tuple[Real, Attributes]]:
        """For each path, where it really is (REALPATH) and what is there (STAT, links
        followed), or the error status each answered; every request in flight at once
        (one round trip)."""
        pipe = self.pipeline()
        for path in paths:
            pipe.send(None, CMD_REALPATH, path)
            pipe.send(None, CMD_STAT, path)
        return [(real_reply(*pipe.reply()[1:]), attrs_reply(*pipe.reply()[1:])) for _ in paths]

    def received(self) -> bool:
        """Whether bytes of a reply are here, not yet parsed."""
        return bool(self._inbox) or self.channel.recv_ready()

    @property
    def outstanding(self) -> int:
        """Requests sent on this channel whose reply has not arrived."""
        return len(cast(Any, self)._expecting)

    def hardlink(self, oldpath: str, newpath: str) -> None:
        """`hardlink@openssh.com`: link(2), which refuses an existing `newpath` (status
        "Failure"). Only when the server announced the extension."""
        t, _ = self.request(CMD_EXTENDED, "hardlink@openssh.com", oldpath, newpath)
        if t != CMD_STATUS:
            raise SFTPError(f"unexpected reply type {t} to hardlink")

    def limits(self) -> Limits:
        """`limits@openssh.com`: the server's largest packet, read, write and number of
        open handles (four uint64). Only when the server announced the extension."""
        t, msg = self.request(CMD_EXTENDED, "limits@openssh.com")
        if t != CMD_EXTENDED_REPLY:
            raise SFTPError(f"unexpected reply type {t} to limits")
        return Limits(msg.get_int64(), msg.get_int64(), msg.get_int64(), msg.get_int64())


def start_subsystem(channel: paramiko.Channel, name: str, timeout: float) -> None:
    """paramiko's `Channel.invoke_subsystem(name)` (RFC 4254 section 6.5), waiting at most
    `timeout` seconds for the server's answer. paramiko waits with no end, and clears the
    channel's event before checking whether the channel closed meanwhile: a request the
    server never answers, or a channel closed just before it, held the thread, and its
    place in the connection's pool of channels, for good. SSHException if the server
    refuses, does not answer in time, or closed the channel."""
    ch = cast(Any, channel)
    request = Message()
    request.add_byte(cMSG_CHANNEL_REQUEST)
    request.add_int(ch.remote_chanid)
    request.add_string("subsystem")
    request.add_boolean(True)
    request.add_string(name)
    with ch.lock:  # a close sets the event holding this lock: it cannot slip in between
        if channel.closed:
            raise paramiko.SSHException("Channel closed.")
        ch._event_pending()
    ch.transport._send_user_message(request)
    if not ch.event.wait(timeout):
        raise paramiko.SSHException(f"no answer to the {name} subsystem request in {timeout} s")
    if not ch.event_ready:
        raise ch.transport.get_exception() or paramiko.SSHException("Channel closed.")


def _no_attributes() -> paramiko.SFTPAttributes:
    return paramiko.SFTPAttributes()


def attributes(msg: Message, name: str = "", longname: str = "") -> paramiko.SFTPAttributes:
    """The file attributes that come next in `msg` (paramiko's private parser)."""
    from_msg = cast(Any, paramiko.SFTPAttributes)._from_msg
    return cast(paramiko.SFTPAttributes, from_msg(msg, name, longname))


def real_reply(t: int, msg: Message) -> Real:
    """The path in a reply to SSH_FXP_REALPATH (SSH_FXP_NAME with one name), or its error."""
    if t == CMD_STATUS:
        return status_error(msg.get_int(), msg.get_text()) or RequestFailed("no path")
    if t != CMD_NAME or msg.get_int() != 1:
        return RequestFailed(f"unexpected reply type {t} to realpath")
    return msg.get_text()


def attrs_reply(t: int, msg: Message) -> Attributes:
    """The attributes in a reply to SSH_FXP_STAT/LSTAT/FSTAT, or its error status."""
    if t == CMD_STATUS:
        return status_error(msg.get_int(), msg.get_text()) or RequestFailed("no attributes")
    if t != CMD_ATTRS:
        return RequestFailed(f"unexpected reply type {t} to stat")
    return attributes(msg)


def handle_reply(t: int, msg: Message) -> bytes | StatusReply:
    """The handle in a reply to SSH_FXP_OPEN/OPENDIR, or its error status."""
    if t == CMD_STATUS:
        return status_error(msg.get_int(), msg.get_text()) or RequestFailed("no handle")
    if t != CMD_HANDLE:
        return RequestFailed(f"unexpected reply type {t} to open")
    return msg.get_binary()


def names_reply(t: int, msg: Message) -> list[paramiko.SFTPAttributes] | StatusReply:
    """The entries in a reply to SSH_FXP_READDIR (SSH_FXP_NAME: uint32 count, then
    filename, longname and attributes each; "." and ".." left out), or its error status
    (`EndOfFile` once the directory is read to its end)."""
    if t == CMD_STATUS:
        return status_error(msg.get_int(), msg.get_text()) or RequestFailed("no names")
    if t != CMD_NAME:
        return RequestFailed(f"unexpected reply type {t} to readdir")
    found = []
    for _ in range(msg.get_int()):
        name, longname = msg.get_text(), msg.get_text()
        attr = attributes(msg, name, longname)
        if name not in (".", ".."):
            found.append(attr)
    return found


class RemoteFile:
    """A file open on the server, by its handle. Unlike paramiko's `SFTPFile`, `close`
    reports the server's error reply: a gateway in front of object storage may store
    the object only then, and a failed close means the content is not there."""

    def __init__(self, client: SftpChannel, handle: bytes):
        self.client, self.handle = client, handle
        self.closed = False

    def stat(self) -> paramiko.SFTPAttributes:
        t, msg = self.client.request(CMD_FSTAT, self.handle)
        if t != CMD_ATTRS:
            raise SFTPError(f"unexpected reply type {t} to fstat")
        return attributes(msg)

    def truncate(self, size: int) -> None:
        attributes = paramiko.SFTPAttributes()
        attributes.st_size = size
        self.client.request(CMD_FSETSTAT, self.handle, attributes)

    def pipeline(self) -> Pipeline:
        """A pipeline whose requests are about this file (reads, writes)."""
        return self.client.pipeline(self.handle)

    def close(self) -> None:
        """Close the handle (once); the server's error reply is raised."""
        if not self.closed:
            self.closed = True
            self.client.request(CMD_CLOSE, self.handle)


class Pipeline:
    """Requests in flight on one channel, whose replies are taken in the order sent.

    paramiko routes each reply by request id to the object given with the request: this
    pipeline (`_async_response`), which holds it until `reply` asks for it. Errors of the
    connection itself (paramiko's SSHException, OSError) leave `reply` and `status` as they
    are; only error statuses become `StatusReply` values.

    `round_trips` counts what the requests cost in latency: a request sent before any
    reply was taken is in the first round trip, one sent because of the reply to a
    request in round trip n is in round trip n + 1 (`send(after=n)`; by default n is
    that of the last reply taken)."""

    def __init__(self, client: SftpChannel, handle: bytes | None = None):
        self.client, self.handle = client, handle
        self._order: deque[tuple[int, Any, int]] = deque()
        self._replies: dict[int, tuple[int, Message]] = {}
        #: The round trip of the last reply taken.
        self.trip = 0
        self.round_trips = 0

    def __len__(self) -> int:
        return len(self._order)

    def send(
        self, tag: Any, cmd: int, *args: Any, first: bool = False, after: int | None = None
    ) -> None:
        """Send request `cmd` with `args` (int64 for 64-bit fields, int for 32-bit, bytes
        or str for strings); `tag` comes back with its reply. With `first` its reply is
        taken before those of requests sent earlier. `after`: the round trip of the reply
        that called for this request, if not the last one taken."""
        if self.handle is not None:
            args = (self.handle, *args)
        num = self.client._private()._async_request(self, cmd, *args)
        trip = (self.trip if after is None else after) + 1
        self.round_trips = max(self.round_trips, trip)
        (self._order.appendleft if first else self._order.append)((num, tag, trip))

    def _async_response(self, t: int, msg: Message, num: int) -> None:
        self._replies[num] = (t, msg)  # paramiko hands our replies over here

    def ready(self) -> bool:
        """Whether the oldest request's reply is here, or on its way in (bytes of it
        arrived): `reply` takes it without waiting a round trip."""
        if not self._order:
            return False
        return self._order[0][0] in self._replies or self.client.received()

    def reply(self) -> tuple[Any, int, Message]:
        """The oldest request's tag and reply (type and message after the id)."""
        num, tag, self.trip = self._order.popleft()
        while num not in self._replies:
            self.client._private()._read_response()
        t, msg = self._replies.pop(num)
        return tag, t, msg

    def status(self) -> tuple[Any, StatusReply | SFTPError | None]:
        """The oldest reply, for a request answered by a status: None for success, else
        the error status (or SFTPError for a reply of another type)."""
        tag, t, msg = self.reply()
        if t != CMD_STATUS:
            return tag, SFTPError(f"unexpected SFTP reply type {t}")
        return tag, status_error(msg.get_int(), msg.get_text())
