"""paramiko's, the socket's and the server's errors as regtool's storage errors.

A lost connection -- a closed socket, EOF, a timeout, any paramiko `SSHException`, a
channel closed under a reader or writer, or a server status saying the connection is gone
-- is always a `TransientError`: the retry wrapper tries again on a new connection, and
no tool takes it for damage. Error statuses the server sends for one request are about
that request (`PathNotFound`, "permission denied", ...) and leave the channel usable.

Messages say what happened in words ("connection to u@h:22 lost: connection reset by
peer"), never with the name of a Python exception class: `reason` words them.
"""

from __future__ import annotations

import socket

import paramiko

from regtool.errors import (
    AuthenticationFailed,
    PathNotFound,
    RegtoolError,
    StorageError,
    TransientError,
    Unreachable,
)
from regtool.storage.sftp.protocol import (
    SFTP_CONNECTION_LOST,
    SFTP_NO_CONNECTION,
    NoSuchFile,
    PermissionDenied,
    StatusReply,
)

DRIVER = "sftp"


def channel_survives(e: BaseException) -> bool:
    """Whether the channel that raised `e` can carry the next request: it can after the
    server's error reply to one request, or an error of regtool's own."""
    if isinstance(e, StatusReply):
        return e.code not in (SFTP_NO_CONNECTION, SFTP_CONNECTION_LOST)
    return isinstance(e, RegtoolError)


def connection_lost(e: BaseException) -> bool:
    """Whether `e` says the SSH connection or the channel is gone (the socket's errors,
    EOF, paramiko's SSHException), rather than that one request failed."""
    if isinstance(e, StatusReply | paramiko.ChannelException):
        return False
    return isinstance(e, paramiko.SSHException | EOFError | OSError)


def _socket_level(e: BaseException | None) -> bool:
    return isinstance(e, EOFError | OSError) and not isinstance(e, StatusReply)


def socket_cause(e: BaseException | None) -> BaseException | None:
    """The error of the socket itself (EOF, a reset, a timeout) behind `e`: `e`, or what
    it was raised from or while handling (paramiko raises "Error reading SSH protocol
    banner" while handling the EOF that was the cause); None if there is none."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if _socket_level(e):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def reason(e: BaseException) -> str:
    """What an error of the connection says happened, in a few words for a message:
    "closed by the other end" (EOF), "connection reset by peer", "no answer in time",
    paramiko's own text ("server connection dropped")."""
    e = socket_cause(e) or e
    if isinstance(e, EOFError):
        return "closed by the other end"
    if isinstance(e, TimeoutError):
        return "no answer in time"
    if isinstance(e, OSError) and e.strerror:
        text = e.strerror
    else:
        text = str(e).strip().rstrip(":").strip()
    if not text:  # an error that says nothing: its kind is all there is
        return f"unexpected {type(e).__name__}"
    return text[0].lower() + text[1:]


def translate(
    e: BaseException, path: str, where: str, *, cause: BaseException | None = None
) -> StorageError:
    """The `StorageError` for `e`, raised by an operation on `path` ("" for the root) at
    `where` (`user@host:port`, for messages). `cause`: what the connection itself died
    of, when known (paramiko's transport keeps it), named in the message rather than
    what the call met after (a send on the closed socket: "socket is closed")."""
    if isinstance(e, StorageError):
        return e
    if isinstance(e, paramiko.AuthenticationException):
        return AuthenticationFailed(f"{where}: authentication failed ({e})", driver=DRIVER)
    if isinstance(e, paramiko.BadHostKeyException):
        return StorageError(
            f"host key of {e.hostname} does not match the one in known_hosts "
            f"(got {e.key.fingerprint}): the server changed, or it is not "
            "the server you meant",
            driver=DRIVER,
        )
    if isinstance(e, StatusReply):
        return _status(e, path, where)
    if isinstance(e, socket.gaierror):
        return Unreachable(f"cannot reach {where}: {reason(e)}", driver=DRIVER)
    if connection_lost(e):
        lost = reason(cause if cause is not None and connection_lost(cause) else e)
        return TransientError(
            f"connection to {where} lost: {lost}", path=path or None, driver=DRIVER
        )
    return StorageError(f"{where}: {reason(e)}", path=path or None, driver=DRIVER)


def login_failed(e: BaseException, where: str, ended_by: BaseException | None) -> StorageError:
    """The `StorageError` for `e`, raised while logging in at `where` once the TCP
    connection was made (`ended_by`: what ended the SSH transport, if it did). A
    connection that ended before the login did is lost, whatever paramiko raised for it:
    it reports an EOF while authenticating as "Authentication failed", and one before
    the key exchange as "Error reading SSH protocol banner". A server that refuses the
    key or password, or says so and disconnects (too many attempts), failed
    authentication."""
    if isinstance(e, StorageError):
        return e
    cause = socket_cause(e) or socket_cause(ended_by)
    if cause is not None:
        return TransientError(
            f"connection to {where} lost during login: {reason(cause)}", driver=DRIVER
        )
    if isinstance(e, paramiko.SSHException) and not isinstance(
        e, paramiko.AuthenticationException | paramiko.BadHostKeyException
    ):  # no common algorithm, a version paramiko does not speak, no method left to try
        return StorageError(f"{where}: login failed: {reason(e)}", driver=DRIVER)
    return translate(e, "", where)


def _status(e: StatusReply, path: str, where: str) -> StorageError:
    if isinstance(e, NoSuchFile):
        return PathNotFound(path, driver=DRIVER)
    if e.code in (SFTP_NO_CONNECTION, SFTP_CONNECTION_LOST):
        return TransientError(
            f"connection to {where} lost: the server says {_text(e)!r}",
            path=path or None,
            driver=DRIVER,
        )
    what = "permission denied" if isinstance(e, PermissionDenied) else _text(e)
    return StorageError(f"{what}: {path or '/'}", path=path or None, driver=DRIVER)


def _text(e: StatusReply) -> str:
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e) or f"error status {e.code}"
