"""The storage driver contract: bytes at paths, nothing about registries.

Paths are `/`-separated and relative to the driver's root: `a/b/c`. The root itself is
`""`. A path never starts or ends with `/`, has no empty, `.` or `..` segment; drivers
reject such paths with `InvalidPath` (see `check_path`).

"Directories" exist only as prefixes of files: a directory is there while some file lies
below it. Object stores have no empty directories; the local and SFTP drivers remove
directories they emptied by `delete` and may leave other empty ones, which every method
treats as absent where it matters (`list` of an empty directory returns `[]`).

Every driver must be safe to call from several threads at once: the tools fan requests out
over a small thread pool.

Temporary names: the local and SFTP writers write to `TEMP_MARK` + a random suffix beside
the target and rename it on commit; `list` and `walk` hide such names. A crash (or a
cleanup that failed) can leave one behind: `walk(prefix, temporaries=True)` yields those
too, with `Entry.temporary` set, so that gc can collect them and verify report them.
Swift writers use no temporary names (an interrupted large object leaves segments, which
the layout's segment sets account for).

Symbolic links and special files (local, SFTP), in `list` and `walk`: a link is followed
where it leads inside the root; a link back into a directory the walk came through (it
would go round forever), a dangling link, a loop of links and fifos, sockets or devices
are skipped with a warning; a link out of the root is refused with a `StorageError`
naming it, never skipped (what lies behind it may be a repository, and gc must not take
blobs for unreferenced because it did not look). `delete` removes a link, never what it
leads to. Every other call keeps to the same rule: a link on a path named directly is
followed only where it leads inside the root, one leading out is refused with a
`StorageError` naming it, and nothing outside the root is ever read, written, created or
removed (local: see `beneath`, which also leaves no gap between check and use; SFTP: see
`sftp/confine.py`, and what the protocol leaves uncovered).

Errors: `PathNotFound` (also a `FileNotFoundError`) when nothing is at a path;
`AuthenticationFailed`, `Unreachable`, `TransientError` or plain `StorageError` for the
rest. Native library errors never escape a driver.
"""

from __future__ import annotations

import io
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO

from regtool.concurrency import DEFAULT_JOBS, map_outcomes
from regtool.errors import InvalidPath, StorageError, TransientError

if TYPE_CHECKING:
    from regtool.storage.backoff import Backoff

# An empty, `.` or `..` segment; `\A`/`\Z`, not `^`/`$` (which also matches before a final "\n").
_BAD_SEGMENT = re.compile(r"(?:\A|/)(?:\.{1,2})?(?:/|\Z)", re.ASCII)

#: Files being written are named like this until they are committed (local, SFTP).
TEMP_MARK = ".regtool-tmp-"

#: A walk's prune hint (`Driver.walk`): called with the driver path of a directory below
#: the walk's prefix, True when the caller needs nothing below that directory.
Prune = Callable[[str], bool]


def check_path(path: str, *, allow_root: bool = False) -> str:
    """Return `path` if it is a valid driver path, else raise `InvalidPath`."""
    if path == "":
        if allow_root:
            return path
        raise InvalidPath(path)
    if "\\" in path or "\x00" in path or _BAD_SEGMENT.search(path):
        raise InvalidPath(path)
    return path


def join(*parts: str) -> str:
    """Join path parts, ignoring empty ones: `join("", "a", "b/c") == "a/b/c"`."""
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


@dataclass(frozen=True, slots=True)
class Entry:
    """One file or directory. `size` and `modified` are None where the backend does not
    give them cheaply (directories; a DLO manifest in a Swift listing reports size 0)."""

    path: str
    is_dir: bool = False
    size: int | None = None
    modified: datetime | None = None
    temporary: bool = False  # a writer's temporary file (only from walk(temporaries=True))
    #: Hex MD5 of the content where a listing gives it for free (Swift's `hash`, and a
    #: plain object's ETag in `stat`); for a large object in a listing it is the 0-byte
    #: manifest's, not the content's. None elsewhere.
    checksum: str | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def set_aside_temporaries(entries: Iterable[Entry], into: list[Entry]) -> Iterator[Entry]:
    """The entries of a `walk(..., temporaries=True)` but writers' temp files, which are
    appended to `into` instead: one walk serves both what is stored and its leftovers."""
    for entry in entries:
        if entry.temporary:
            into.append(entry)
        else:
            yield entry


@dataclass(frozen=True, slots=True)
class LargeObject:
    """A file whose content lives in separate segments (a Swift DLO)."""

    size: int | None  # the whole content's size
    segment_set: str | None  # driver path of its own segments, None for a plain object


@dataclass
class DeleteReport:
    """What `delete_many` did: paths deleted (or already absent) and paths that failed,
    with why. `transient` holds the failures that met a transient fault (a throttled or
    failed request, a dropped connection), with the fault: worth another try."""

    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    transient: dict[str, TransientError] = field(default_factory=dict)

    def fail(self, path: str, error: StorageError) -> None:
        """Record that deleting `path` failed with `error`."""
        self.failed[path] = str(error)
        if isinstance(error, TransientError):
            self.transient[path] = error


class Writer(ABC):
    """A streaming writer. Content becomes visible at its path only on `commit()`: except
    on an SFTP server that refuses rename (some hosted gateways), where a new file is
    written in place, seen growing, and `cancel()` removes it.

    With `append=True` the writer continues an existing file; bytes it appends may be
    visible to readers before `commit()`, and `cancel()` takes them away again, leaving
    the file as it was. Using a writer as a context manager cancels it unless it was
    committed.
    """

    #: Whether the bytes this writer writes lie apart from what any other writer writes
    #: to the same path, so that `cancel()` takes away this writer's bytes and never
    #: another's, whatever others did meanwhile (Swift: segments of its own). False
    #: where an append is cut back to where it began, which would take bytes another
    #: writer appended after it too.
    isolated: bool = False

    @property
    @abstractmethod
    def size(self) -> int:
        """Bytes in the file so far: what existed before an append plus what was written."""

    @abstractmethod
    def write(self, data: bytes) -> int:
        """Append `data`; returns len(data)."""

    @abstractmethod
    def commit(self) -> None:
        """Make everything written visible at the path. The writer is closed after."""

    @abstractmethod
    def cancel(self) -> None:
        """Discard what this writer wrote. Safe to call more than once, or after commit
        (then it does nothing)."""

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class Driver(ABC):
    """Bytes at paths. See the module docstring for path rules and errors."""

    #: Short name used in messages: "local", "sftp", "swift".
    name: str = "driver"
    #: Whether files may be large objects whose listings show 0 bytes (Swift DLOs).
    has_large_objects: bool = False
    #: Whether `walk` entries carry each object's MD5 (`Entry.checksum`; Swift), so that
    #: one listing can stand for a request per object.
    listed_checksums: bool = False
    #: Whether `walk` itself goes on where it was after a transient fault (a lost
    #: connection), waiting as the backoff `retry_steps` handed down says, never yielding
    #: an entry twice (SFTP): the retry wrapper then leaves the walk to it.
    resumes_walks: bool = False

    @abstractmethod
    def list(self, prefix: str = "") -> list[Entry]:
        """The direct children of directory `prefix`, files and directories, in any order.

        `PathNotFound` if `prefix` is not a directory; an empty directory (local, SFTP)
        and the root of an empty store list as `[]`.
        """

    @abstractmethod
    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        """Every file below directory `prefix` (recursively), never directories, in any
        order, with as few requests as the backend allows. A missing or empty `prefix`
        yields nothing (no error). With `temporaries`, writers' temporary files are
        yielded as well, marked `Entry.temporary` (see the module docstring).

        `prune` is a hint that spares requests: it is asked once for each directory
        below `prefix` (never `prefix` itself), before that directory is read, and a
        directory it answers True for is not descended into. A driver that lists
        directory by directory (local, SFTP) then yields none of the files below it; one
        that lists flat (Swift: a listing names 10,000 objects below any depth, and a
        test per name would cost more than the caller's own) may ignore the hint and
        yield them. So a caller passes over what it does not need whatever the driver
        did, and its result does not depend on the backend."""

    @abstractmethod
    def stat(self, path: str) -> Entry:
        """The file or directory at `path`; `PathNotFound` if neither. A file's size is
        its full content size (a Swift DLO: the sum of its segments)."""

    @abstractmethod
    def get(self, path: str) -> bytes:
        """The whole content of a (small) file; `PathNotFound` if absent."""

    def get_many(
        self, paths: Iterable[str], jobs: int = DEFAULT_JOBS
    ) -> dict[str, bytes | Exception]:
        """The whole content of each (small) file of `paths`, or what `get` would raise for
        it (`PathNotFound` for a missing one, any other `StorageError`): one file's
        failure never stops the others. By default `get` of each, `jobs` at a time on
        threads; SFTP sends every file's requests together on one channel, so a batch
        costs about two round trips, not two per file. A fault that ends the whole batch
        (a dropped connection) may be raised instead."""
        return map_outcomes(self.get, paths, jobs)

    def put(self, path: str, data: bytes) -> None:
        """Write a whole file atomically, replacing any existing one; parent directories
        are created as needed. By default through `writer`, whose commit is atomic."""
        w = self.writer(path)
        try:
            w.write(data)
            w.commit()
        finally:
            w.cancel()

    @abstractmethod
    def put_if_absent(self, path: str, data: bytes) -> bool:
        """Write a small file only if nothing is at `path`: True if this call created it,
        False if a file was there already (then nothing is written). For leases, such as
        the lock of an upload being appended.

        Local and SFTP check and write in one atomic step, also between processes and
        hosts sharing the store, and the file is never seen partly written (a hard link
        to a complete temporary file; else SFTP's plain rename, which refuses an
        existing target). An SFTP server that refuses both gets an exclusive create,
        then the write: atomic, but the file may be seen empty or partly written until
        the write ends. Swift has no atomic create: it checks `If-None-Match: *` when a
        PUT starts, so PUTs in flight at the same moment can all succeed, the latest
        one's content winning. A caller that needs one winner on Swift writes content of
        its own and reads it back."""

    @abstractmethod
    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        """A streaming reader of `length` bytes (or to the end) from `offset`.

        `PathNotFound` if absent. An offset at or past the end reads as empty; a length
        past the end is cut at the end. The caller closes the reader.
        """

    @abstractmethod
    def writer(self, path: str, append: bool = False) -> Writer:
        """A streaming `Writer` for `path`. Without `append` the file is replaced on commit;
        with `append` it is continued, and `PathNotFound` is raised if it does not exist."""

    @abstractmethod
    def move(self, src: str, dst: str) -> None:
        """Move a file, replacing `dst` if it exists. `PathNotFound` if `src` is absent."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Delete a file, or a directory with everything below it (on Swift, with the
        segments of any large object deleted). `PathNotFound` if nothing is there."""

    @abstractmethod
    def delete_many(self, paths: Iterable[str]) -> DeleteReport:
        """Delete many files in as few requests as the backend allows. Paths already
        absent count as deleted. Only the named objects are removed: segments of a
        Swift large object must be named too. Never raises for a single path's failure:
        it is reported in `DeleteReport.failed` (and in `transient` when it was a
        transient fault, which the retry wrapper tries again)."""

    @abstractmethod
    def create_root(self) -> None:
        """Create the driver's root (a directory, a Swift container) if it is missing, as
        a server does before its first write; nothing if it exists."""

    @abstractmethod
    def root_exists(self) -> bool:
        """Whether the driver's root (a directory, a Swift container) exists. Listings
        read a missing root as an empty one, so a tool that only reads asks first: a
        mistyped LOCATION must not pass for an empty registry."""

    def large_object(self, path: str) -> LargeObject | None:
        """The size and segment set of the file at `path` (`PathNotFound` if absent), or
        None, without a request, on backends without large objects."""
        return None

    def segment_set(self, path: str) -> str | None:
        """The segment set (driver path) of the large object at `path` (`PathNotFound` if
        absent); None for a plain object, and, without a request, on backends without
        large objects. Cheaper than `large_object` where the sizes of segment sets are
        known from a walk: on Swift a HEAD of the DLO's manifest, which Swift answers
        without listing the segments."""
        return None

    def retry_steps(self, backoff: Backoff) -> None:  # noqa: B027 - most have no such steps
        """Retry with `backoff` the idempotent requests inside a call that is not retried
        as a whole (a Swift writer's segment uploads, HEADs and listings; an SFTP walk's
        reconnection, `resumes_walks`); the retry wrapper hands its own down. By default
        nothing: a driver without such steps."""

    def request_count(self) -> int | None:
        """Requests made to the backend so far, where it counts them (Swift); else None."""
        return None

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except FileNotFoundError:
            return False
        return True

    def close(self) -> None:  # noqa: B027 - drivers without connections need nothing
        """Release connections. The driver is unusable afterwards."""

    def describe(self) -> str:
        """Where this driver points, without secrets: for messages."""
        return self.name

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BytesReader(io.BytesIO):
    """A reader over bytes already in memory (small objects)."""
