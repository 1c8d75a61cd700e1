"""A directory on the local filesystem.

OS errors leave as regtool's: `PathNotFound` where nothing is at a path, `StorageFull`
for a full disk or a used-up quota, `StorageError` naming the cause for the rest.

Symbolic links and special files, in `list` and `walk` (the calls that discover names):
- a link is followed only when it resolves inside the root. A link leading out of the
  store is refused with a `StorageError` naming it, not skipped: what lies behind it may
  be a repository, and gc must not take blobs for unreferenced because it did not look;
- a link to a directory that holds the link (its own directory or an ancestor, on the
  way the walk came) would loop, and is skipped with a warning: what it leads to is
  being walked already. So is a link that leads nowhere (dangling, or a loop of links);
- fifos, sockets and devices are skipped with a warning; reading one is refused (opening
  a fifo would block).
A path named directly (`get`, `stat`, `put`, ...) is resolved by the OS, as every path a
tool uses comes from a listing or from a registry name.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import shutil
import stat as st_mode
import uuid
from collections.abc import Collection, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from regtool.errors import PathNotFound, StorageError, StorageFull
from regtool.storage.base import TEMP_MARK, DeleteReport, Driver, Entry, Writer, check_path
from regtool.storage.streams import LimitedReader

log = logging.getLogger(__name__)

#: Errors that mean nothing is at a path (a missing part, or a file where a directory is).
MISSING = frozenset({errno.ENOENT, errno.ENOTDIR})
#: Errors of a full store, and how to say them.
FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


def _entry(rel: str, st: os.stat_result, is_dir: bool, temporary: bool = False) -> Entry:
    modified = datetime.fromtimestamp(st.st_mtime, UTC)
    size = None if is_dir else st.st_size
    return Entry(rel, is_dir=is_dir, size=size, modified=modified, temporary=temporary)


def _write_all(file: io.FileIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[file.write(view) or 0 :]


def _inside(path: str, directory: str) -> bool:
    """Whether real path `path` is `directory` or below it."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


class LocalWriter(Writer):
    """Writes a temp file beside the target that commit renames over it, or appends in
    place. Unbuffered, so every fault shows at the call that met it; a write or commit
    that fails first discards what this writer wrote (removes the temp file, or cuts the
    file back to where the append began), then raises."""

    def __init__(self, driver: LocalDriver, path: str, append: bool):
        self._driver, self._path, self._append = driver, path, append
        self._target = driver._abs(path)
        self._temp: Path | None = None
        self._done = False
        self._error: StorageError | None = None
        if append:
            try:
                self._file = open(self._target, "r+b", buffering=0)  # noqa: SIM115
            except OSError as e:
                raise driver._error(e, path) from None
            self._start = self._file.seek(0, os.SEEK_END)
        else:
            self._temp = self._target.with_name(f"{TEMP_MARK}{uuid.uuid4().hex}")
            self._file = driver._create(self._temp, path)
            self._start = 0
        self._size = self._start

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> int:
        if self._error is not None:
            raise self._error
        if self._done:
            raise StorageError(
                f"write to a finished writer: {self._path}", path=self._path, driver="local"
            )
        try:
            _write_all(self._file, data)
        except OSError as e:
            self._fail(e)
        self._size += len(data)
        return len(data)

    def commit(self) -> None:
        if self._error is not None:
            raise self._error
        if self._done:
            return
        try:
            self._file.close()  # unbuffered: nothing to flush, but a network fs reports here
            if self._temp is not None:
                os.replace(self._temp, self._target)
        except OSError as e:
            self._fail(e)
        self._done = True

    def cancel(self) -> None:
        if self._done:
            return
        self._done = True
        self._discard()

    def _fail(self, e: OSError) -> NoReturn:
        self._done = True
        self._discard()
        self._error = self._driver._error(e, self._path, missing=())
        raise self._error from None

    def _discard(self) -> None:
        """Take back what this writer wrote; never raises (it runs while a fault is
        being reported)."""
        try:
            if self._append and not self._file.closed:
                os.ftruncate(self._file.fileno(), self._start)
        except OSError as e:
            log.warning("could not cut %s back after a failed append: %s", self._path, e)
        with contextlib.suppress(OSError):
            self._file.close()
        if self._temp is not None:
            try:
                self._temp.unlink(missing_ok=True)
            except OSError as e:
                log.warning("could not remove %s: %s", self._temp, e)
            self._driver._prune(self._temp.parent)


class LocalDriver(Driver):
    name = "local"

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    # -- errors ---------------------------------------------------------------------------

    def _error(
        self,
        e: OSError,
        path: str,
        missing: Collection[int] = MISSING,
        doing: str | None = None,
    ) -> StorageError:
        """The regtool error for OS error `e` met at driver path `path` (while `doing`
        what, for the message): `PathNotFound` for the errnos in `missing`, `StorageFull`
        for a full store, else a `StorageError` saying the cause (`e` itself if it is one
        already)."""
        if isinstance(e, StorageError):
            return e
        if e.errno in missing:
            return PathNotFound(path, driver=self.name)
        if e.errno in FULL:
            return StorageFull(f"{FULL[e.errno]} in {self.root}", path=path, driver=self.name)
        reason = e.strerror or type(e).__name__
        reason = reason[:1].lower() + reason[1:]  # "Permission denied" -> "permission denied"
        text = f"{doing}: {reason}" if doing else f"{reason}: {path or '/'}"
        return StorageError(text, path=path, driver=self.name)

    def _make_parent(self, target: Path, path: str, doing: str) -> None:
        """Create `target`'s directory (for driver path `path`, while `doing` what). A
        concurrent delete may prune an empty parent before it is used: callers try twice,
        then say `_vanishing`."""
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StorageError(
                f"{doing}: a part of its directory is a file", path=path, driver=self.name
            ) from None
        except OSError as e:
            raise self._error(e, path, (), doing) from None

    def _vanishing(self, path: str, doing: str) -> StorageError:
        return StorageError(f"{doing}: its directory keeps vanishing", path=path, driver=self.name)

    def _create(self, temp: Path, path: str) -> io.FileIO:
        """A new file at `temp` for writing `path`, creating parents."""
        doing = f"cannot write {path}"
        for _ in (1, 2):
            self._make_parent(temp, path, doing)
            try:
                return open(temp, "xb", buffering=0)
            except FileNotFoundError:
                continue
            except OSError as e:
                self._prune(temp.parent)
                raise self._error(e, path, missing=()) from None
        raise self._vanishing(path, doing)

    # -- names: links and special files ----------------------------------------------------

    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    def _follow(
        self, link: str, rel: str, real_root: str, around: Iterable[str]
    ) -> tuple[str, os.stat_result] | None:
        """Where the symbolic link at `link` (driver path `rel`) leads: its real path and
        status, or None when it is skipped (see the module docstring); `around` are the
        real directories the caller is inside, which it must not lead back to."""
        try:
            st = os.stat(link)
        except OSError as e:
            if e.errno not in (*MISSING, errno.ELOOP):
                raise self._error(e, rel) from None
            why = "a loop of symbolic links" if e.errno == errno.ELOOP else "a dangling link"
            log.warning("%s: skipped %s: %s", self.root, rel, why)
            return None
        real = os.path.realpath(link)
        if not _inside(real, real_root):
            raise StorageError(
                f"{rel} is a symbolic link to {real}, outside the store: regtool does not "
                "follow links out of a store (make the LOCATION the directory it leads to, "
                "or move the data inside)",
                path=rel,
                driver=self.name,
            )
        if st_mode.S_ISDIR(st.st_mode) and any(_inside(d, real) for d in around):
            log.warning(
                "%s: skipped %s: a symbolic link to %s, which holds the link (a loop)",
                self.root,
                rel,
                real,
            )
            return None
        return real, st

    def _special(self, rel: str) -> None:
        log.warning("%s: skipped %s: not a regular file, directory or link", self.root, rel)

    # -- the Driver contract --------------------------------------------------------------

    def create_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._error(e, "", (), f"cannot create {self.root}") from None

    def root_exists(self) -> bool:
        return self.root.is_dir()

    def _abs(self, path: str, *, allow_root: bool = False) -> Path:
        check_path(path, allow_root=allow_root)
        return self.root / path if path else self.root

    def list(self, prefix: str = "") -> list[Entry]:
        target = self._abs(prefix, allow_root=True)
        entries: list[Entry] = []
        try:
            real_root = self._real_root()
            here = os.path.realpath(target)
            with os.scandir(target) as it:
                for de in it:
                    if de.name.startswith(TEMP_MARK):
                        continue
                    rel = f"{prefix}/{de.name}" if prefix else de.name
                    try:
                        if de.is_symlink():
                            found = self._follow(de.path, rel, real_root, (here,))
                            if found is not None:
                                is_dir = st_mode.S_ISDIR(found[1].st_mode)
                                if is_dir or st_mode.S_ISREG(found[1].st_mode):
                                    entries.append(_entry(rel, found[1], is_dir))
                                else:
                                    self._special(rel)
                        elif de.is_dir(follow_symlinks=False) or de.is_file(follow_symlinks=False):
                            st = de.stat(follow_symlinks=False)
                            entries.append(_entry(rel, st, de.is_dir(follow_symlinks=False)))
                        else:
                            self._special(rel)
                    except FileNotFoundError:
                        continue  # deleted while we listed
        except OSError as e:
            if prefix == "" and e.errno in MISSING:
                return []
            raise self._error(e, prefix) from None
        return entries

    def walk(self, prefix: str = "", *, temporaries: bool = False) -> Iterator[Entry]:
        top = self._abs(prefix, allow_root=True)
        real_root = self._real_root()
        if not _inside(os.path.realpath(top), real_root):
            raise StorageError(
                f"{prefix} leads out of the store: regtool does not follow links out of a store",
                path=prefix,
                driver=self.name,
            )
        # Each directory to list: its driver path, its real path, and the real directories
        # in which the walk followed a link to get there (a link back into any is a loop).
        stack: list[tuple[str, str, tuple[str, ...]]] = [(prefix, os.path.realpath(top), ())]
        while stack:
            rel_dir, real, via = stack.pop()
            try:
                it = os.scandir(self._abs(rel_dir, allow_root=True))
            except OSError as e:
                if e.errno in MISSING:
                    continue  # a missing prefix, or removed while we walked
                raise self._error(e, rel_dir) from None
            with it:
                for de in self._entries(it, rel_dir):
                    temporary = de.name.startswith(TEMP_MARK)
                    if temporary and not temporaries:
                        continue
                    rel = f"{rel_dir}/{de.name}" if rel_dir else de.name
                    try:
                        if de.is_dir(follow_symlinks=False):
                            stack.append((rel, f"{real}/{de.name}", via))
                        elif de.is_file(follow_symlinks=False):
                            yield _entry(rel, de.stat(follow_symlinks=False), False, temporary)
                        elif de.is_symlink():
                            found = self._follow(de.path, rel, real_root, (real, *via))
                            if found is None:
                                continue
                            target, st = found
                            if st_mode.S_ISDIR(st.st_mode):
                                stack.append((rel, target, (real, *via)))
                            elif st_mode.S_ISREG(st.st_mode):
                                yield _entry(rel, st, False, temporary)
                            else:
                                self._special(rel)
                        else:
                            self._special(rel)
                    except FileNotFoundError:
                        continue  # deleted while we walked
                    except OSError as e:
                        raise self._error(e, rel, missing=()) from None

    def _entries(self, it: Iterator[os.DirEntry[str]], rel_dir: str) -> Iterator[os.DirEntry[str]]:
        """The entries of a directory being listed; a fault while reading it translated."""
        while True:
            try:
                de = next(it)
            except StopIteration:
                return
            except OSError as e:
                raise self._error(e, rel_dir, missing=()) from None
            yield de

    def stat(self, path: str) -> Entry:
        target = self._abs(path)
        try:
            st = target.stat()
        except OSError as e:
            raise self._error(e, path) from None
        if not (st_mode.S_ISDIR(st.st_mode) or st_mode.S_ISREG(st.st_mode)):
            raise StorageError(
                f"not a regular file or directory: {path}", path=path, driver=self.name
            )
        return _entry(path, st, st_mode.S_ISDIR(st.st_mode))

    def _open_file(self, path: str) -> io.FileIO:
        """The regular file at `path`, opened for reading. A directory is not a file:
        `PathNotFound`; a fifo, socket or device is refused (and never blocks)."""
        target = self._abs(path)
        try:
            fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            if e.errno == errno.ENXIO:  # a socket, or a device without a driver
                raise StorageError(
                    f"not a regular file: {path}", path=path, driver=self.name
                ) from None
            raise self._error(e, path, missing=(*MISSING, errno.EISDIR)) from None
        try:
            mode = os.fstat(fd).st_mode
            if st_mode.S_ISDIR(mode):
                raise PathNotFound(path, driver=self.name)
            if not st_mode.S_ISREG(mode):
                raise StorageError(f"not a regular file: {path}", path=path, driver=self.name)
            os.set_blocking(fd, True)
            return io.FileIO(fd, "rb", closefd=True)
        except BaseException as e:
            os.close(fd)
            if isinstance(e, OSError):
                raise self._error(e, path) from None
            raise

    def get(self, path: str) -> bytes:
        with self._open_file(path) as f:
            try:
                return f.readall()
            except OSError as e:
                raise self._error(e, path, missing=()) from None

    def put_if_absent(self, path: str, data: bytes) -> bool:
        target = self._abs(path)
        temp = target.with_name(f"{TEMP_MARK}{uuid.uuid4().hex}")
        try:
            with self._create(temp, path) as f:
                _write_all(f, data)
            os.link(temp, target)  # refuses an existing target, atomically
        except FileExistsError:
            return False
        except OSError as e:
            raise self._error(e, path, missing=()) from None
        finally:
            try:
                temp.unlink(missing_ok=True)
            except OSError as e:
                log.warning("could not remove %s: %s", temp, e)
            self._prune(temp.parent)  # directories made for a write that failed
        return True

    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        if offset < 0 or (length is not None and length < 0):
            raise StorageError(f"negative offset or length: {path}", path=path, driver=self.name)
        raw = self._open_file(path)
        try:
            raw.seek(offset)
        except OSError as e:
            raw.close()
            raise self._error(e, path, missing=()) from None
        inner = raw if length is None else LimitedReader(raw, length)
        return io.BufferedReader(_Translating(self, inner, path))

    def writer(self, path: str, append: bool = False) -> Writer:
        return LocalWriter(self, path, append)

    def move(self, src: str, dst: str) -> None:
        source, target = self._abs(src), self._abs(dst)
        try:
            if not source.is_file():
                raise PathNotFound(src, driver=self.name)
        except OSError as e:
            raise self._error(e, src) from None
        doing = f"cannot move {src} to {dst}"
        for _ in (1, 2):
            self._make_parent(target, dst, doing)
            try:
                os.replace(source, target)
                break
            except FileNotFoundError:
                if not os.path.lexists(source):
                    raise PathNotFound(src, driver=self.name) from None
            except OSError as e:
                self._prune(target.parent)
                raise self._error(e, dst, (), doing) from None
        else:
            raise self._vanishing(dst, doing)
        self._prune(source.parent)

    def delete(self, path: str) -> None:
        target = self._abs(path)

        def vanished(fn: object, name: str, exc: tuple[type, BaseException, object]) -> None:
            if not isinstance(exc[1], FileNotFoundError):  # deleted meanwhile: fine
                raise exc[1]

        try:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, onerror=vanished)
            else:
                target.unlink()
        except OSError as e:
            raise self._error(e, path) from None
        self._prune(target.parent)

    def delete_many(self, paths: Iterable[str]) -> DeleteReport:
        report = DeleteReport()
        parents: set[Path] = set()
        for path in paths:
            try:
                target = self._abs(path)
                target.unlink(missing_ok=True)
                parents.add(target.parent)
                report.deleted.append(path)
            except StorageError as e:
                report.failed[path] = str(e)
            except OSError as e:
                report.failed[path] = str(self._error(e, path, missing=()))
        for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            self._prune(parent)
        return report

    def _prune(self, directory: Path) -> None:
        """Remove now-empty directories up to the root, as distribution's driver does."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent


class _Translating(io.RawIOBase):
    """A local file being read, whose OS errors (an I/O error of the disk) leave as
    `StorageError`s."""

    def __init__(self, driver: LocalDriver, inner: io.RawIOBase, path: str):
        self._driver, self._inner, self._path = driver, inner, path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self._inner.readinto(buffer) or 0
        except OSError as e:
            raise self._driver._error(e, self._path, missing=()) from None

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()
