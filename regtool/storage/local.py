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
Paths named directly (`get`, `open`, `stat`, `put`, `writer`, `move`, `delete`, ...) keep to
the same rule: a link on the way is followed only where it leads inside the store, one
out of it is refused with a `StorageError` naming it, and no call reads, writes, creates
or removes anything outside the root (`regtool.storage.beneath` walks every path from the
root without letting the OS follow a link). Deleting or replacing a link acts on the link.
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
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, TypeVar

from regtool.errors import PathNotFound, StorageError, StorageFull
from regtool.storage.base import (
    TEMP_MARK,
    DeleteReport,
    Driver,
    Entry,
    Prune,
    Writer,
    check_path,
)
from regtool.storage.beneath import MAX_MKDIRS, Beneath, Place
from regtool.storage.streams import LimitedReader

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Errors that mean nothing is at a path (a missing part, or a file where a directory is).
MISSING = frozenset({errno.ENOENT, errno.ENOTDIR})
#: Errors of a full store, and how to say them.
FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


def _keep(directory: str) -> bool:
    """The prune hint of a walk that needs everything."""
    return False


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


def _dirname(path: str) -> str:
    """The driver path of `path`'s directory ("" for the root)."""
    return path.rpartition("/")[0]


def _temp_name() -> str:
    return f"{TEMP_MARK}{uuid.uuid4().hex}"


class LocalWriter(Writer):
    """Writes a temp file beside the target that commit renames over it, or appends in
    place. Unbuffered, so every fault shows at the call that met it; a write or commit
    that fails first discards what this writer wrote (removes the temp file, or cuts the
    file back to where the append began), then raises. The directory is held open from
    the start: the rename on commit happens where the temp file was made."""

    def __init__(self, driver: LocalDriver, path: str, append: bool):
        self._driver, self._path, self._append = driver, path, append
        self._dir: int | None = None  # the target's directory (a descriptor of our own)
        self._temp: str | None = None
        self._done = False
        self._error: StorageError | None = None
        if append:
            try:
                fd = driver._beneath.open(path, os.O_RDWR)
            except OSError as e:
                raise driver._error(e, path) from None
            self._file = io.FileIO(fd, "r+b", closefd=True)
            self._start = self._file.seek(0, os.SEEK_END)
        else:
            self._dir, self._temp, self._file = driver._create(path)
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
            if self._dir is not None and self._temp is not None:
                name = self._path.rpartition("/")[2]
                os.replace(self._temp, name, src_dir_fd=self._dir, dst_dir_fd=self._dir)
        except OSError as e:
            self._fail(e)
        self._done = True
        self._close_dir()

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
        if self._dir is not None and self._temp is not None:
            try:
                os.unlink(self._temp, dir_fd=self._dir)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("could not remove %s beside %s: %s", self._temp, self._path, e)
            self._close_dir()
            self._driver._prune(_dirname(self._path))

    def _close_dir(self) -> None:
        if self._dir is not None:
            with contextlib.suppress(OSError):
                os.close(self._dir)
            self._dir = None


class LocalDriver(Driver):
    """A directory. Every call stays inside it: paths are walked from the root without
    ever letting the OS follow a link, and links are followed only where they lead
    inside (see `regtool.storage.beneath`)."""

    name = "local"

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self._beneath = Beneath(self.root, self.name)

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

    def _in_new_dir(self, path: str, doing: str, fn: Callable[[Place], T]) -> T:
        """`fn(place)` for `path`'s last component, its directories made as needed (and
        links on the way followed inside the root). A concurrent delete may prune an
        empty directory before `fn` uses it (`fn` then raises FileNotFoundError): this
        tries again, as often as `MAX_MKDIRS` (writers and pruners of one repository's
        uploads race all the time when many uploads finish at once), then says the
        directory keeps vanishing."""
        for _ in range(MAX_MKDIRS):
            try:
                return self._beneath.at(path, fn, follow=False, create=True)
            except FileNotFoundError:
                continue
            except (FileExistsError, NotADirectoryError):
                raise StorageError(
                    f"{doing}: a part of its directory is a file", path=path, driver=self.name
                ) from None
            except OSError as e:
                self._prune(_dirname(path))
                raise self._error(e, path, (), doing) from None
        raise StorageError(f"{doing}: its directory keeps vanishing", path=path, driver=self.name)

    def _create(self, path: str) -> tuple[int, str, io.FileIO]:
        """A new temporary file beside `path` for writing it, creating directories: a
        descriptor of the directory (the caller's to close), the temp file's name there,
        and the file."""
        temp = _temp_name()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

        def create(place: Place) -> tuple[int, str, io.FileIO]:
            fd = os.open(temp, flags, 0o666, dir_fd=place.dir)
            return os.dup(place.dir), temp, io.FileIO(fd, "wb", closefd=True)

        return self._in_new_dir(path, f"cannot write {path}", create)

    # -- names: links and special files ----------------------------------------------------

    def _real_root(self) -> str:
        return self._beneath.real_root()

    def _follow(self, rel: str, around: Iterable[str]) -> tuple[str, os.stat_result] | None:
        """Where the symbolic link at driver path `rel` leads: its real path and status,
        or None when it is skipped (see the module docstring); `around` are the real
        directories the caller is inside, which it must not lead back to. A link out of
        the store raises."""
        try:
            st, real = self._beneath.stat(rel)
        except OSError as e:
            if e.errno not in (*MISSING, errno.ELOOP):
                raise self._error(e, rel) from None
            why = "a loop of symbolic links" if e.errno == errno.ELOOP else "a dangling link"
            log.warning("%s: skipped %s: %s", self.root, rel, why)
            return None
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

    def _open_dir(self, prefix: str) -> tuple[int, str]:
        """A descriptor of directory `prefix` to list, and its real path."""
        check_path(prefix, allow_root=True)
        return self._beneath.open_dir(prefix)

    def list(self, prefix: str = "") -> list[Entry]:
        entries: list[Entry] = []
        try:
            fd, here = self._open_dir(prefix)
        except OSError as e:
            if prefix == "" and e.errno in MISSING:
                return []
            raise self._error(e, prefix) from None
        try:
            with os.scandir(fd) as it:
                for de in self._entries(it, prefix):
                    if de.name.startswith(TEMP_MARK):
                        continue
                    rel = f"{prefix}/{de.name}" if prefix else de.name
                    try:
                        if de.is_symlink():
                            found = self._follow(rel, (here,))
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
                        raise self._error(e, rel, missing=()) from None
        except OSError as e:
            raise self._error(e, prefix) from None
        finally:
            os.close(fd)
        return entries

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        try:
            fd, real = self._open_dir(prefix)
        except OSError as e:
            if e.errno in MISSING:
                return  # a missing prefix
            raise self._error(e, prefix) from None
        yield from self._walk(fd, prefix, real, (), temporaries, prune or _keep)

    def _walk(
        self,
        fd: int,
        rel_dir: str,
        real: str,
        via: tuple[str, ...],
        temporaries: bool,
        prune: Prune,
    ) -> Iterator[Entry]:
        """The files below the directory open as `fd` (closed when done): driver path
        `rel_dir`, real path `real`, reached through links followed in the real
        directories `via` (a link back into any of them, or into `real`, is a loop).
        Depth first, one descriptor open per level; a directory `prune` answers True
        for is not opened."""
        try:
            try:
                it = os.scandir(fd)
            except OSError as e:
                if e.errno in MISSING:
                    return  # removed while we walked
                raise self._error(e, rel_dir) from None
            with it:
                for de in self._entries(it, rel_dir):
                    temporary = de.name.startswith(TEMP_MARK)
                    if temporary and not temporaries:
                        continue
                    rel = f"{rel_dir}/{de.name}" if rel_dir else de.name
                    try:
                        around = (real, *via)
                        if de.is_dir(follow_symlinks=False):
                            if prune(rel):
                                continue
                            sub = self._subdirectory(fd, de.name)
                            if sub is not None:
                                yield from self._walk(
                                    sub, rel, f"{real}/{de.name}", via, temporaries, prune
                                )
                            else:  # turned into a link since it was listed
                                yield from self._walk_link(
                                    rel, around, temporary, temporaries, prune
                                )
                        elif de.is_file(follow_symlinks=False):
                            yield _entry(rel, de.stat(follow_symlinks=False), False, temporary)
                        elif de.is_symlink():
                            yield from self._walk_link(rel, around, temporary, temporaries, prune)
                        else:
                            self._special(rel)
                    except FileNotFoundError:
                        continue  # deleted while we walked
                    except OSError as e:
                        raise self._error(e, rel, missing=()) from None
        finally:
            os.close(fd)

    def _walk_link(
        self, rel: str, around: tuple[str, ...], temporary: bool, temporaries: bool, prune: Prune
    ) -> Iterator[Entry]:
        """What the link at `rel` leads to, as the module docstring says; `around` are
        the real directories the walk is inside."""
        found = self._follow(rel, around)
        if found is None:
            return
        target, st = found
        if st_mode.S_ISDIR(st.st_mode):
            if prune(rel):
                return
            sub, _ = self._beneath.open_dir(rel)
            yield from self._walk(sub, rel, target, around, temporaries, prune)
        elif st_mode.S_ISREG(st.st_mode):
            yield _entry(rel, st, False, temporary)
        else:
            self._special(rel)

    def _subdirectory(self, fd: int, name: str) -> int | None:
        """A readable descriptor of subdirectory `name` of `fd`, never through a link:
        None if it is a link now (swapped in since the listing), to be walked as one."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(name, flags, dir_fd=fd)
        except OSError as e:
            if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise  # FileNotFoundError: deleted while we walked
            return None

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
        check_path(path)
        try:
            st, _ = self._beneath.stat(path)
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
        check_path(path)
        try:
            fd = self._beneath.open(path, os.O_RDONLY | os.O_NONBLOCK)
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
        check_path(path)
        dir_fd, temp, f = self._create(path)
        name = path.rpartition("/")[2]
        try:
            with f:
                _write_all(f, data)
            # A hard link refuses an existing target, atomically.
            os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            return False
        except OSError as e:
            raise self._error(e, path, missing=()) from None
        finally:
            try:
                os.unlink(temp, dir_fd=dir_fd)
            except OSError as e:
                log.warning("could not remove %s beside %s: %s", temp, path, e)
            os.close(dir_fd)
            self._prune(_dirname(path))  # directories made for a write that failed
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
        check_path(path)
        return LocalWriter(self, path, append)

    def move(self, src: str, dst: str) -> None:
        check_path(src)
        check_path(dst)
        try:
            # A file, or a link to one inside the store (the link itself moves).
            if not st_mode.S_ISREG(self._beneath.stat(src)[0].st_mode):
                raise PathNotFound(src, driver=self.name)
        except OSError as e:
            raise self._error(e, src) from None
        doing = f"cannot move {src} to {dst}"

        def source(s: Place) -> None:
            def target(t: Place) -> None:
                try:
                    os.replace(s.name, t.name, src_dir_fd=s.dir, dst_dir_fd=t.dir)
                except FileNotFoundError:
                    if _lexists(s):
                        raise  # the target's directory vanished: made again
                    raise PathNotFound(src, driver=self.name) from None

            self._in_new_dir(dst, doing, target)

        try:
            self._beneath.at(src, source, follow=False)
        except OSError as e:
            raise self._error(e, src) from None
        self._prune(_dirname(src))

    def delete(self, path: str) -> None:
        check_path(path)

        def vanished(fn: object, name: str, exc: tuple[type, BaseException, object]) -> None:
            if not isinstance(exc[1], FileNotFoundError):  # deleted meanwhile: fine
                raise exc[1]

        def remove(p: Place) -> None:
            # The link itself, never what it leads to; a directory with all below it,
            # by descriptors (shutil.rmtree follows no link inside either).
            st = os.stat(p.name, dir_fd=p.dir, follow_symlinks=False)
            if st_mode.S_ISDIR(st.st_mode):
                shutil.rmtree(p.name, onerror=vanished, dir_fd=p.dir)
            else:
                os.unlink(p.name, dir_fd=p.dir)

        try:
            self._beneath.at(path, remove, follow=False)
        except OSError as e:
            raise self._error(e, path) from None
        self._prune(_dirname(path))

    def delete_many(self, paths: Iterable[str]) -> DeleteReport:
        report = DeleteReport()
        parents: set[str] = set()

        def unlink(p: Place) -> None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p.name, dir_fd=p.dir)

        for path in paths:
            try:
                check_path(path)
                self._beneath.at(path, unlink, follow=False)
                parents.add(_dirname(path))
                report.deleted.append(path)
            except StorageError as e:
                report.fail(path, e)
            except OSError as e:
                if e.errno in MISSING:  # a directory on the way is missing: so is the file
                    report.deleted.append(path)
                    continue
                report.fail(path, self._error(e, path, missing=()))
        for parent in sorted(parents, key=lambda p: p.count("/"), reverse=True):
            self._prune(parent)
        return report

    def _prune(self, directory: str) -> None:
        """Remove now-empty directories from driver path `directory` up to the root, as
        distribution's driver does; never through a link."""
        parts = directory.split("/") if directory else []
        while parts:  # from the deepest up, each reached in one call while it can be
            try:
                held = self._beneath.open_parent("/".join(parts))
            except FileNotFoundError:  # gone meanwhile: what holds it may be empty
                parts.pop()
                continue
            except OSError:
                return
            if held is None:
                break  # a link on the way: walked below
            parent, name = held
            try:
                os.rmdir(name, dir_fd=parent)
            except FileNotFoundError:
                pass
            except OSError:
                return  # not empty: nothing above is
            finally:
                os.close(parent)
            parts.pop()
        if not parts:
            return
        directory = "/".join(parts)
        try:
            chain = self._beneath.parents(directory)
        except OSError:
            return
        try:
            for parent, name in reversed(chain):
                try:
                    os.rmdir(name, dir_fd=parent)
                except OSError:
                    return
        finally:
            for parent, _ in chain:
                os.close(parent)


def _lexists(place: Place) -> bool:
    try:
        os.stat(place.name, dir_fd=place.dir, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


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
