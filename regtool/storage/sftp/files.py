"""Operations on whole files by absolute path, on one leased channel: directories made as
needed, files moved into place the way the server allows (`Renaming`), and files created
only if absent.

Errors are native (paramiko's, `StatusReply`); the caller's lease translates them.
"""

from __future__ import annotations

import posixpath
import stat
import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import TypeVar

from regtool.errors import StorageError
from regtool.storage.base import TEMP_MARK
from regtool.storage.sftp.capabilities import Renaming
from regtool.storage.sftp.connection import Lease
from regtool.storage.sftp.errors import DRIVER
from regtool.storage.sftp.protocol import (
    SFTP_OP_UNSUPPORTED,
    PermissionDenied,
    RequestFailed,
    SftpChannel,
    StatusReply,
)
from regtool.storage.sftp.transfer import HandleWriter, copy_file

T = TypeVar("T")
ATTEMPTS = 16  # for steps that race with other writers and pruners (many uploads at once)


def temp_name(target: str) -> str:
    """A fresh temporary name beside `target` (hidden from listings by TEMP_MARK)."""
    return posixpath.join(posixpath.dirname(target), f"{TEMP_MARK}{uuid.uuid4().hex}")


def makedirs(client: SftpChannel, target: str) -> None:
    """mkdir -p, tolerating writers and pruners racing us."""
    for _ in range(ATTEMPTS):
        try:
            client.mkdir(target)
            return
        except OSError as e:
            parent = posixpath.dirname(target)
            if isinstance(e, FileNotFoundError) and parent not in ("", ".", "/", target):
                makedirs(client, parent)
                continue
            with suppress(OSError):  # SFTP v3 says only "Failure" if it exists
                if isinstance(e, StatusReply) and stat.S_ISDIR(client.stat(target).st_mode or 0):
                    return
            raise
    raise StorageError(f"directory keeps vanishing: {target}", driver=DRIVER)


def in_new_dir(client: SftpChannel, target: str, fn: Callable[[], T]) -> T:
    """`fn()`, creating `target`'s directory if that is what it lacked."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return fn()
        except FileNotFoundError:
            if attempt == ATTEMPTS:
                raise
            makedirs(client, posixpath.dirname(target))
    raise AssertionError("unreachable")


def exists(client: SftpChannel, path: str) -> bool:
    try:
        client.lstat(path)
    except FileNotFoundError:
        return False
    return True


def refused(e: BaseException) -> bool:
    """Whether a rename was refused as a kind of request (not for its paths): OpenSSH's
    `internal-sftp -P rename` says "permission denied", other servers "unsupported".
    regtool renames files it wrote itself, so the file's permissions are seldom the
    reason; where they are, the copy that follows fails in the same way."""
    return isinstance(e, PermissionDenied) or (
        isinstance(e, StatusReply) and e.code == SFTP_OP_UNSUPPORTED
    )


def move(lease: Lease, source: str, target: str) -> None:
    """Move the file `source` over `target`, replacing it, as the server allows:
    posix-rename (atomic); else remove the target and rename (a reader can find no file
    for a moment); else, on a server that refuses rename, copy and delete the source.
    A refused rename is remembered (`Connection.rename_refused`)."""
    client = lease.client
    renaming = lease.renaming
    if renaming is Renaming.POSIX:
        client.posix_rename(source, target)
        return
    if renaming is Renaming.PLAIN:
        try:
            _remove_and_rename(client, source, target)
            return
        except StatusReply as e:
            if not refused(e):
                raise
            lease.connection.rename_refused()
    copy_file(client, lease.capabilities, source, target)
    client.remove(source)


def _remove_and_rename(client: SftpChannel, source: str, target: str) -> None:
    # SFTP v3's rename refuses an existing target: remove it first. Another writer can
    # put one there in between; then the later one wins, as with an atomic replace.
    for attempt in range(1, ATTEMPTS + 1):
        with suppress(FileNotFoundError):
            client.remove(target)
        try:
            client.rename(source, target)
            return
        except RequestFailed:
            if attempt == ATTEMPTS or not exists(client, target):
                raise


def write_file(lease: Lease, path: str, mode: str, data: bytes) -> None:
    """Write all of `data` to `path`, opened with `mode` ("w", or "x" to create it only if
    absent, else `RequestFailed`), creating its directory if missing. If the write fails
    after the open, the file is removed again (where the channel still works)."""
    client = lease.client
    file = in_new_dir(client, path, lambda: client.open_file(path, mode))
    try:
        writer = HandleWriter(file, 0, lease.capabilities.write_chunk)
        writer.write(data)
        writer.flush()
        file.close()
    except BaseException:
        with suppress(Exception):
            file.close()
            client.remove(path)
        raise


def create(lease: Lease, target: str, data: bytes) -> bool:
    """Write `data` at `target` only if nothing is there: True if this call created it,
    False if a file was there (then nothing is written). Never replaces a file.

    With `hardlink@openssh.com`, or else a rename (SFTP v3's refuses an existing
    target), a complete temporary file is linked or renamed to `target`: atomic, and never
    seen partly written. On a server that allows neither, `target` is opened with
    SSH_FXF_EXCL and written: readers can then see it empty or partly written until the
    write ends, and if that write fails the file is removed again."""
    client = lease.client
    if lease.capabilities.hardlink or lease.connection.rename_allowed:
        temp = temp_name(target)
        write_file(lease, temp, "w", data)
        try:
            created = _publish(lease, temp, target)
        finally:
            with suppress(FileNotFoundError):
                client.remove(temp)  # left by a hard link, or a refused rename
        if created is not None:
            return created
    try:
        write_file(lease, target, "x", data)
    except RequestFailed:
        if exists(client, target):
            return False
        raise
    return True


def _publish(lease: Lease, temp: str, target: str) -> bool | None:
    """Link or rename the complete `temp` to `target` unless it exists: True if done,
    False if `target` exists, None if the server refused both ways."""
    client = lease.client
    if lease.capabilities.hardlink:
        try:
            client.hardlink(temp, target)
            return True
        except RequestFailed:
            if exists(client, target):
                return False
            # no hard links on this file system: try a rename
    if not lease.connection.rename_allowed:
        return None
    try:
        client.rename(temp, target)
        return True
    except StatusReply as e:
        if refused(e):
            lease.connection.rename_refused()
            return None
        if isinstance(e, RequestFailed) and exists(client, target):
            return False
        raise
