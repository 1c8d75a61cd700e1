"""paramiko's, the socket's and the server's errors as regtool's storage errors.

A lost connection -- a closed socket, EOF, a timeout, any paramiko `SSHException`, a
channel closed under a reader or writer, or a server status saying the connection is gone
-- is always a `TransientError`: the retry wrapper tries again on a new connection, and
no tool takes it for damage. Error statuses the server sends for one request are about
that request (`PathNotFound`, "permission denied", ...) and leave the channel usable.
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


def translate(e: BaseException, path: str, where: str, *, connecting: bool = False) -> StorageError:
    """The `StorageError` for `e`, raised by an operation on `path` ("" for the root) at
    `where` (`user@host:port`, for messages). `connecting`: raised while making the first
    connection, where a network error means the server cannot be reached at all."""
    if isinstance(e, StorageError):
        return e
    kind = f"{type(e).__name__}: {e}"
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
    if isinstance(e, socket.gaierror) or (connecting and isinstance(e, OSError)):
        return Unreachable(f"cannot reach {where}: {kind}", driver=DRIVER)
    if isinstance(e, paramiko.SSHException | EOFError | OSError):
        return TransientError(f"{where}: {kind}", path=path or None, driver=DRIVER)
    return StorageError(kind, path=path or None, driver=DRIVER)


def _status(e: StatusReply, path: str, where: str) -> StorageError:
    if isinstance(e, NoSuchFile):
        return PathNotFound(path, driver=DRIVER)
    if e.code in (SFTP_NO_CONNECTION, SFTP_CONNECTION_LOST):
        return TransientError(f"{where}: {e}", path=path or None, driver=DRIVER)
    reason = "permission denied" if isinstance(e, PermissionDenied) else _text(e)
    return StorageError(f"{reason}: {path or '/'}", path=path or None, driver=DRIVER)


def _text(e: StatusReply) -> str:
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e) or f"error status {e.code}"
