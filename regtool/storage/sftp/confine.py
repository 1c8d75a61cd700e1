"""Keeping requests inside the driver's root on a server that follows links.

SFTP version 3 has no O_NOFOLLOW: the server resolves every path it is given, links and
all, so a link in the store (`repositories/x -> /elsewhere`, `.../data -> /etc/shadow`)
would take a read or a write out of it, with the rights of the account regtool logs in
as. So before using a path the driver asks the server where the path really is
(SSH_FXP_REALPATH resolves every link on it; OpenSSH allows a missing last component)
and refuses one that leads out of the root's real path, naming it:

- reads (`open`, `get`, `stat`, `list`, a walk's top directory): the REALPATH goes out
  with the request itself, pipelined, so the check costs no round trip; a file opened
  out of the root is closed unread;
- writes (`writer`, `put`, `put_if_absent`, `move`): the REALPATH of the target (or, when
  directories are to be made, of its nearest existing directory) is asked before
  anything is created: one round trip more per write. Directories made after it are
  new, so nothing on the way can be a link;
- deletes: the REALPATH of the directory holding what goes (a link itself is removed,
  never what it leads to); `delete_many` asks for every directory at once: one round
  trip more per call, not per path;
- a walk's directories below its top are the real directories its listings found (links
  among them resolved and checked as `listing.py` says).

Not covered, because the protocol offers no way: a link swapped in between the REALPATH
and the request after it (someone who can write into the store and times it to the
millisecond), and a directory of a walk turned into a link after it was listed.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from regtool.errors import StorageError
from regtool.storage.sftp.errors import DRIVER
from regtool.storage.sftp.listing import inside
from regtool.storage.sftp.protocol import NoSuchFile, Real, SftpChannel, StatusReply


def outside(path: str, real: str) -> StorageError:
    """The error for driver path `path`, which the server resolves to `real`."""
    return StorageError(
        f"{path or '/'} leads to {real} through a symbolic link, outside the store: regtool "
        "does not follow links out of a store (make the LOCATION the directory it leads "
        "to, or move the data inside)",
        path=path or None,
        driver=DRIVER,
    )


def check(real: Real, root: str, path: str) -> None:
    """Raise unless `real` (a REALPATH answer for driver path `path`) lies in `root`, the
    root's real path. An error answer is raised as it is (the request sent with it
    says the same, or more)."""
    if isinstance(real, StatusReply):
        raise real
    if not inside(real, root):
        raise outside(path, real)


def check_to_create(client: SftpChannel, root: str, target: str, path: str) -> None:
    """Before creating `target` (absolute; driver path `path`), with directories made as
    needed: raise unless it, or the nearest directory above it that exists, lies in
    `root`. One REALPATH where the directory exists, one more per missing level."""
    current = target
    while True:
        (real,) = client.realpaths([current])
        if not isinstance(real, NoSuchFile):
            check(real, root, path)
            return
        parent = posixpath.dirname(current)
        if parent in (current, "", "."):
            raise real
        current = parent


def check_directories(
    client: SftpChannel, root: str, targets: Sequence[tuple[str, str]]
) -> dict[str, StorageError]:
    """For pairs (driver path, absolute path of its directory): the driver paths whose
    directory lies out of `root`, with the error to report. All REALPATHs are in flight
    at once. A directory the server cannot resolve is no error here: what is in it is
    absent too, or the remove meets the same error."""
    directories = list(dict.fromkeys(d for _, d in targets))
    answers = dict(zip(directories, client.realpaths(directories), strict=True))
    refused: dict[str, StorageError] = {}
    for path, directory in targets:
        real = answers[directory]
        if isinstance(real, StatusReply):
            continue  # the remove meets the same (a missing directory: nothing to delete)
        if not inside(real, root):
            refused[path] = outside(path, real)
    return refused
