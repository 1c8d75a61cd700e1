"""One directory's entries, as listings and walks see them.

Symbolic links are followed, as the local driver does, but only to what lies inside the
driver's root, and never to the directory being listed or one above it (a walk would go
round forever): the server resolves the link (SSH_FXP_REALPATH) and its real path is
compared with the root's and with those of the directories the walk came through. A link
back into one of those is skipped with a warning, and so are dangling links and special
files (fifos, sockets, devices); a link leading out of the root is refused with an error
naming it, since skipping it could make gc take what lies behind it for unreferenced.
Deletes never follow links: a link is removed as a file.
"""

from __future__ import annotations

import logging
import posixpath
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import paramiko

from regtool.errors import StorageError
from regtool.storage.base import TEMP_MARK, Entry
from regtool.storage.sftp.protocol import Attributes, NoSuchFile, Real, StatusReply

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listed:
    """An entry, and for a directory its real path on the server (links resolved)."""

    entry: Entry
    real: str | None = None


@dataclass(frozen=True)
class Directory:
    """A directory to list: driver path, absolute path on the server, and the real paths
    of itself and each directory above it up to the root (last: its own)."""

    path: str
    target: str
    reals: tuple[str, ...]


def entry(path: str, attr: paramiko.SFTPAttributes, temporary: bool = False) -> Entry:
    is_dir = stat.S_ISDIR(attr.st_mode or 0)
    modified = None if attr.st_mtime is None else datetime.fromtimestamp(attr.st_mtime, UTC)
    size = None if is_dir else attr.st_size
    return Entry(path, is_dir=is_dir, size=size, modified=modified, temporary=temporary)


def inside(real: str, root: str) -> bool:
    return root == "/" or real == root or real.startswith(root.rstrip("/") + "/")


def _wanted(name: str, temporaries: bool) -> bool:
    return temporaries or not name.startswith(TEMP_MARK)


def links(attrs: Iterable[paramiko.SFTPAttributes], *, temporaries: bool) -> list[str]:
    """Names of the symbolic links among `attrs` that a listing (with `temporaries`) must
    resolve to follow them: `list_directory` wants each one's REALPATH and STAT."""
    return [
        a.filename
        for a in attrs
        if stat.S_ISLNK(a.st_mode or 0) and _wanted(a.filename, temporaries)
    ]


def list_directory(
    directory: Directory,
    attrs: list[paramiko.SFTPAttributes],
    *,
    temporaries: bool,
    follow: bool = True,
    resolved: Mapping[str, tuple[Real, Attributes]] | None = None,
) -> list[Listed]:
    """The entries of `directory`, whose listing gave `attrs` (writers' temporary files
    only with `temporaries`). With `follow`, links are resolved as the module docstring
    says, from `resolved`: for each name `links` gave, where the server says the link
    really leads (REALPATH of its path in `directory.target`) and what is there (STAT),
    or the error status each answered. Without `follow` (to delete), every entry but a
    directory is a file: links, fifos and the like too.

    `StatusReply` for an error status other than "no such file" in `resolved`;
    `StorageError` for a link out of the root."""
    listed = []
    for attr in attrs:
        name = attr.filename
        if not _wanted(name, temporaries):
            continue
        temporary = name.startswith(TEMP_MARK)
        path = f"{directory.path}/{name}" if directory.path else name
        mode = attr.st_mode or 0
        real: str | None = posixpath.join(directory.reals[-1], name)
        if stat.S_ISLNK(mode) and follow:
            answer, attr_answer = (resolved or {})[name]
            if isinstance(answer, NoSuchFile) or isinstance(attr_answer, NoSuchFile):
                continue  # dangling
            if isinstance(answer, StatusReply):
                raise answer
            if isinstance(attr_answer, StatusReply):
                raise attr_answer
            real, attr = answer, attr_answer
            mode = attr.st_mode or 0
            if not inside(real, directory.reals[0]):
                raise StorageError(
                    f"{path} is a symbolic link to {real}, outside the store: regtool does "
                    "not follow links out of a store (make the LOCATION the directory it "
                    "leads to, or move the data inside)",
                    path=path,
                    driver="sftp",
                )
            if stat.S_ISDIR(mode) and any(inside(d, real) for d in directory.reals[1:]):
                log.warning("not following %s: it leads back to %s, which holds it", path, real)
                continue
        if stat.S_ISDIR(mode):
            listed.append(Listed(entry(path, attr, temporary), real))
        elif stat.S_ISREG(mode) or not follow:  # deletes take links and fifos too
            listed.append(Listed(entry(path, attr, temporary)))
    return listed
