"""What an SFTP server can do, from what it announces in SSH_FXP_VERSION, never from the
text of an error reply (servers word their errors as they like).

OpenSSH announces only the extensions it allows: `internal-sftp -P posix-rename` drops
`posix-rename@openssh.com` from the list (and answers the request "permission denied").
Hosted gateways in front of object storage usually announce nothing, and some refuse even
the plain SFTP rename: that one is found out when a rename is refused (see `Renaming`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from regtool.storage.sftp.protocol import Limits

#: The largest read or write every SFTP server accepts (filexfer-02 asks servers to
#: support 32768-byte packets); used when the server gives no `limits@openssh.com`.
DEFAULT_CHUNK = 32768
#: Requests grow to the server's limits only up to this size: more per request saves
#: little once a transfer keeps megabytes in flight.
MAX_CHUNK = 256 * 1024

POSIX_RENAME = "posix-rename@openssh.com"
HARDLINK = "hardlink@openssh.com"
LIMITS = "limits@openssh.com"


class Renaming(enum.Enum):
    """How a file is put in place over another."""

    #: `posix-rename@openssh.com`: rename(2), an atomic replace.
    POSIX = "posix-rename"
    #: SFTP v3's rename, which refuses an existing target: the target is removed first,
    #: so readers can find no file for a moment (not atomic).
    PLAIN = "rename"
    #: The server refuses rename: writers write in place (no temporary file; the content
    #: can be seen before commit, and a cancelled write removes the file), and `move`
    #: copies then deletes.
    NONE = "none"


@dataclass(frozen=True)
class Capabilities:
    """The server's SFTP version and extensions (`{name: data}` as announced), and the
    `limits@openssh.com` reply when there was one."""

    version: int
    extensions: Mapping[str, bytes]
    limits: Limits | None = None

    def offers(self, extension: str) -> bool:
        return extension in self.extensions

    @property
    def renaming(self) -> Renaming:
        """The best way to replace a file this server announces (a server that refuses the
        plain rename says so only when asked: see `Connection.rename_refused`)."""
        return Renaming.POSIX if self.offers(POSIX_RENAME) else Renaming.PLAIN

    @property
    def hardlink(self) -> bool:
        return self.offers(HARDLINK)

    @property
    def read_chunk(self) -> int:
        """Bytes per read request: the server's largest read, up to `MAX_CHUNK`."""
        return _chunk(self.limits.max_read if self.limits else 0)

    @property
    def write_chunk(self) -> int:
        """Bytes per write request: the server's largest write, up to `MAX_CHUNK` (a
        larger write makes OpenSSH drop the connection)."""
        return _chunk(self.limits.max_write if self.limits else 0)

    @property
    def open_handles(self) -> int | None:
        """The most files and directories the server keeps open at once on a channel, if
        it says (`limits@openssh.com`)."""
        return (
            self.limits.max_open_handles if self.limits and self.limits.max_open_handles else None
        )


def _chunk(limit: int) -> int:
    return DEFAULT_CHUNK if limit <= 0 else min(limit, MAX_CHUNK)
