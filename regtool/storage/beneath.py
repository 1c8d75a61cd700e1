"""Reaching paths below a directory (a local store's root) without ever leaving it.

Every name the local driver uses is a path below its root, and a symbolic link on that
path (`repositories/x -> /elsewhere`, `.../data -> /etc/shadow`) must not take a read or
a write out of the store: whoever may write into the store (a sync job, an SFTP account)
would otherwise get the rights of the process serving it, everywhere.

So a path is never handed to the kernel whole. It is walked a component at a time from a
descriptor of the root, each component opened relative to its directory's descriptor
with O_NOFOLLOW: the kernel follows no link of its own accord, and a link is followed
here only by reading it and walking its target in turn, which must stay below the root:
a `..` past the root, or an absolute target outside it, is refused with a `StorageError`
naming the link. What was checked is what is used: no moment passes between a check and
the call it guards in which a link swapped in could be followed.

Walking costs a system call to open and one to close each directory on the way (ten of
each for a layer link of distribution's layout), on every storage call. Where Linux has
openat2 (5.6 and later; Python does not offer it: called through ctypes, as libpathrs,
which would, is not packaged for Debian), a path without links is reached in one call
instead: RESOLVE_BENEATH with RESOLVE_NO_SYMLINKS opens its directory only if every
component is a real directory below the root. Any path that holds a link, or that the
kernel refuses, is walked as above; the outcome is the same, only slower.

A link is followed like the kernel would inside the root: relative targets from the
link's directory, absolute ones that name a place below the root (by its real path, or
by the path the root was given as), up to `MAX_LINKS` links a path. A target that passes
out of the root, even to come back in, is refused.

Not covered, by design: a directory already opened that someone moves out of the root
meanwhile (that needs write access to the store and to where it goes), and hard links (a
hard link is the file itself; Linux's `fs.protected_hardlinks` keeps users from linking
files they do not own).

Errors are the OS's (`OSError`, for the driver to translate) except a link out of the
root, which is a `StorageError`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from regtool.errors import StorageError

T = TypeVar("T")

#: Links followed at most in one path, as Linux's own path walk (ELOOP past it).
MAX_LINKS = 40
#: Directories made at most for one path: a pruner racing a writer gives up after this.
MAX_MKDIRS = 64

# O_PATH: a descriptor only to walk from (no read permission needed), where the OS has it.
_PATH = getattr(os, "O_PATH", os.O_RDONLY)
_DIR = _PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    """openat2's `struct open_how` (linux/openat2.h)."""

    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


#: openat2's number, the same on every Linux architecture (added after the tables merged).
_SYS_OPENAT2 = 437
#: RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH: no link followed, nothing reached above the fd.
_RESOLVE_BENEATH_NO_LINKS = 0x04 | 0x08
#: What says the kernel (or a sandbox's filter) has no openat2: walked from then on.
_NO_OPENAT2 = frozenset({errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.E2BIG})


class _OpenAt2:
    """openat2(2) through libc's `syscall`, while the kernel answers it."""

    def __init__(self) -> None:
        self.available = False
        self._how = _OpenHow(_DIR, 0, _RESOLVE_BENEATH_NO_LINKS)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._syscall = libc.syscall
        except (OSError, AttributeError):
            return
        self._syscall.restype = ctypes.c_long
        self.available = os.uname().sysname == "Linux"

    def open_dir(self, dir_fd: int, path: str) -> int | None:
        """A descriptor (O_PATH) of directory `path` below `dir_fd`, every component on
        the way a real directory; None where the kernel refuses (a link, a missing or
        special component...): the caller walks instead. `FileNotFoundError` when a
        component is missing (the walk would only find the same)."""
        if not self.available:
            return None
        fd = self._syscall(
            _SYS_OPENAT2,
            ctypes.c_int(dir_fd),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.byref(self._how),
            ctypes.c_size_t(ctypes.sizeof(self._how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err == errno.ENOENT:
            raise FileNotFoundError(err, os.strerror(err), path)
        if err in _NO_OPENAT2:
            self.available = False
        return None

    def open_dir_making(self, root: int, parts: list[str]) -> int | None:
        """`open_dir` of the directory `parts` below `root`, making the missing ones
        below the deepest that is there (each opened without following a link, as the
        walk makes them); None where the walk must decide (a link, a directory pruned
        meanwhile...)."""
        have = len(parts)
        while True:  # the deepest directory there
            try:
                fd = self.open_dir(root, "/".join(parts[:have])) if have else os.dup(root)
                break
            except FileNotFoundError:
                have -= 1
        if fd is None:
            return None
        try:
            for name in parts[have:]:
                with contextlib.suppress(FileExistsError):  # made meanwhile: opened below
                    os.mkdir(name, dir_fd=fd)
                child = os.open(name, _DIR, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError:
            os.close(fd)
            return None
        return fd


_openat2 = _OpenAt2()


@dataclass(frozen=True)
class Place:
    """Where a path's last component lies: the descriptor of its directory, its name
    there ("." for the directory itself), and the directory's path from the root (its
    real path below the real root, since every directory on it was opened without
    following a link)."""

    dir: int
    name: str
    below: tuple[str, ...]

    def real(self, real_root: str) -> str:
        """The real path of the component, given the root's real path."""
        parts = self.below if self.name == "." else (*self.below, self.name)
        return "/".join((real_root.rstrip("/"), *parts)) if parts else real_root


class Beneath:
    """Paths below `root` (which may itself be a link: the root is whatever it leads to)."""

    def __init__(self, root: Path, driver: str = "local"):
        self.root = root
        self.driver = driver
        self._real_root: str | None = None

    def real_root(self) -> str:
        """The root's real path (links resolved), found once."""
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        return self._real_root

    def at(
        self,
        path: str,
        fn: Callable[[Place], T],
        *,
        follow: bool = True,
        create: bool = False,
    ) -> T:
        """`fn(place)` for the last component of driver path `path` ("" for the root),
        reached as the module docstring says. With `follow`, when `fn` fails with ELOOP
        or ENOTDIR and the component is a link, the link is followed and `fn` called
        again for where it leads (so `fn` opens with O_NOFOLLOW, or says ELOOP for a
        link it found); without, `fn` acts on a link itself. `create` makes missing
        directories on the way (not the last component). Descriptors passed to `fn`
        are closed when it returns."""
        done, found = self._at_directly(path, fn, follow=follow, create=create)
        if done:
            return found  # type: ignore[return-value]
        todo: deque[tuple[str, int]] = deque((name, i) for i, name in enumerate(path.split("/")))
        root = self._open_root(create)
        fds, below = [root], list[str]()
        links = mkdirs = 0
        origin: str | None = None  # the first link followed: named in errors

        def follow_link(target: str, index: int) -> None:
            nonlocal links, origin
            links += 1
            if links > MAX_LINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
            if origin is None:
                origin = "/".join(path.split("/")[: index + 1])
            if target.startswith("/"):
                rest = self._below_root(target)
                if rest is None:
                    raise self._escape(origin or path, target)
                while len(fds) > 1:
                    os.close(fds.pop())
                below.clear()
                target = rest
            else:
                leads = os.path.normpath("/".join((self.real_root(), *below, target)))
                if not _inside(leads, self.real_root()):
                    raise self._escape(origin or path, leads)
            todo.extendleft((name, index) for name in reversed(target.split("/")))

        try:
            while todo:
                name, index = todo.popleft()
                last = not todo
                if name == "..":
                    if len(fds) == 1:  # follow_link checked; a race may still lead here
                        raise self._escape(origin or path, "..")
                    os.close(fds.pop())
                    below.pop()
                    name = "." if last else ""
                if name in ("", "."):
                    if not last:
                        continue
                    name = "."
                if last:
                    try:
                        return fn(Place(fds[-1], name, tuple(below)))
                    except OSError as e:
                        if not follow or e.errno not in (errno.ELOOP, errno.ENOTDIR):
                            raise
                        target = _link(fds[-1], name)
                        if target is None:
                            raise
                        follow_link(target, index)
                        continue
                try:
                    fd = os.open(name, _DIR, dir_fd=fds[-1])
                except FileNotFoundError:
                    if not create or mkdirs >= MAX_MKDIRS:
                        raise
                    mkdirs += 1
                    with contextlib.suppress(FileExistsError):  # made meanwhile: open it
                        os.mkdir(name, dir_fd=fds[-1])
                    todo.appendleft((name, index))
                    continue
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    target = _link(fds[-1], name)
                    if target is None:
                        raise  # a file where a directory should be: ENOTDIR
                    follow_link(target, index)
                    continue
                fds.append(fd)
                below.append(name)
            raise AssertionError("unreachable: a path has a last component")
        finally:
            for fd in fds:
                os.close(fd)

    def _at_directly(
        self, path: str, fn: Callable[[Place], T], *, follow: bool, create: bool
    ) -> tuple[bool, T | None]:
        """`at` in one openat2 call for a plain path (no empty, `.` or `..` component)
        whose directories are all real: (True, what `fn` returned); (False, None) where
        the walk must decide (a link on the way or at the end). With `create`, the
        missing directories are made below the deepest one there."""
        if not _openat2.available or not path:
            return False, None
        parts = path.split("/")
        if "" in parts or "." in parts or ".." in parts:
            return False, None
        root = self._open_root(create)
        try:
            if len(parts) > 1:
                found = (
                    _openat2.open_dir_making(root, parts[:-1])
                    if create
                    else _openat2.open_dir(root, "/".join(parts[:-1]))
                )
                if found is None:
                    return False, None
                fd = found
            else:
                fd = root
            try:
                return True, fn(Place(fd, parts[-1], tuple(parts[:-1])))
            except OSError as e:
                if follow and e.errno in (errno.ELOOP, errno.ENOTDIR):
                    return False, None  # perhaps a link at the end: the walk follows it
                raise
            finally:
                if fd != root:
                    os.close(fd)
        finally:
            os.close(root)

    def _open_root(self, create: bool) -> int:
        """A descriptor of the root, made first (with its parents) if `create`: the root
        is where the user pointed, so it is reached as the OS resolves it."""
        try:
            return os.open(self.root, _PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            if not create:
                raise
        self.root.mkdir(parents=True, exist_ok=True)
        return os.open(self.root, _PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def open(self, path: str, flags: int, mode: int = 0o666) -> int:
        """`os.open` of driver path `path` (links inside the root followed)."""
        flags |= os.O_NOFOLLOW | os.O_CLOEXEC
        return self.at(path, lambda p: os.open(p.name, flags, mode, dir_fd=p.dir))

    def open_dir(self, path: str) -> tuple[int, str]:
        """A readable descriptor of the directory at `path` ("" for the root) and its
        real path. ENOTDIR if it is a file."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        return self.at(
            path, lambda p: (os.open(p.name, flags, dir_fd=p.dir), p.real(self.real_root()))
        )

    def stat(self, path: str) -> tuple[os.stat_result, str]:
        """The status of what `path` leads to (links inside the root followed), and its
        real path."""

        def lookup(p: Place) -> tuple[os.stat_result, str]:
            st = os.stat(p.name, dir_fd=p.dir, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise OSError(errno.ELOOP, "a symbolic link", p.name)
            return st, p.real(self.real_root())

        return self.at(path, lookup)

    def open_parent(self, path: str) -> tuple[int, str] | None:
        """(descriptor of the directory holding `path`, the name of `path` there), every
        directory on the way a real one, in one openat2 call; None where that cannot be
        told so (no openat2, a link on the way): the caller walks (`parents`).
        `FileNotFoundError` if a directory is missing. The caller closes the descriptor."""
        parts = path.split("/")
        if not _openat2.available or "" in parts or "." in parts or ".." in parts:
            return None
        root = self._open_root(False)
        if len(parts) == 1:
            return root, path
        try:
            fd = _openat2.open_dir(root, "/".join(parts[:-1]))
        finally:
            os.close(root)
        return None if fd is None else (fd, parts[-1])

    def parents(self, directory: str) -> list[tuple[int, str]]:
        """(descriptor of the parent, name) of each directory on driver path `directory`,
        from the root down, as far as they are real directories (no link is followed:
        a directory reached through one is not the path's to remove). The caller closes
        the descriptors."""
        out: list[tuple[int, str]] = []
        fd = os.open(self.root, _PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in directory.split("/") if directory else ():
                try:
                    child = os.open(name, _DIR, dir_fd=fd)
                except OSError:
                    break
                out.append((fd, name))
                fd = child
        finally:
            os.close(fd)
        return out

    def _below_root(self, target: str) -> str | None:
        """An absolute link target as a path below the root, None if it is not below it."""
        for base in (self.real_root(), os.path.abspath(self.root)):
            normal = os.path.normpath(target)
            if _inside(normal, base):
                return normal[len(base.rstrip("/")) :].lstrip("/")
        return None

    def _escape(self, link: str, leads: str) -> StorageError:
        return StorageError(
            f"{link} is a symbolic link to {leads}, outside the store: regtool does not "
            "follow links out of a store (make the LOCATION the directory it leads to, "
            "or move the data inside)",
            path=link,
            driver=self.driver,
        )


def _inside(path: str, directory: str) -> bool:
    """Whether `path` is `directory` or below it (both absolute and normalised)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _link(dir_fd: int, name: str) -> str | None:
    """The target of the link `name` in `dir_fd`, None if it is no link."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.EINVAL:
            return None
        raise
