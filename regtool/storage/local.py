"""A directory on the local filesystem."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from regtool.errors import PathNotFound, StorageError
from regtool.storage.base import TEMP_MARK, DeleteReport, Driver, Entry, Writer, check_path
from regtool.storage.streams import LimitedReader


def _entry(rel: str, st: os.stat_result, is_dir: bool, temporary: bool = False) -> Entry:
    modified = datetime.fromtimestamp(st.st_mtime, UTC)
    size = None if is_dir else st.st_size
    return Entry(rel, is_dir=is_dir, size=size, modified=modified, temporary=temporary)


def _create(path: Path) -> BinaryIO:
    """Open a new file for writing, creating parents; retried once because a concurrent
    delete may prune an empty parent between the mkdir and the open."""
    for attempt in (1, 2):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return open(path, "wb")
        except FileNotFoundError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class LocalWriter(Writer):
    def __init__(self, driver: LocalDriver, path: str, append: bool):
        self._target = driver._abs(path)
        self._append = append
        self._done = False
        if append:
            try:
                self._file = open(self._target, "r+b")  # noqa: SIM115 - closed in commit/cancel
            except FileNotFoundError:
                raise PathNotFound(path, driver=driver.name) from None
            self._start = self._file.seek(0, os.SEEK_END)
            self._temp = self._target
        else:
            self._temp = self._target.with_name(f"{TEMP_MARK}{uuid.uuid4().hex}")
            self._file = _create(self._temp)
            self._start = 0
        self._size = self._start

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> int:
        self._file.write(data)
        self._size += len(data)
        return len(data)

    def commit(self) -> None:
        if self._done:
            return
        self._file.flush()
        self._file.close()
        if not self._append:
            os.replace(self._temp, self._target)
        self._done = True

    def cancel(self) -> None:
        if self._done:
            return
        self._done = True
        if self._append:
            self._file.truncate(self._start)
            self._file.close()
        else:
            self._file.close()
            with contextlib.suppress(FileNotFoundError):
                self._temp.unlink()


class LocalDriver(Driver):
    name = "local"

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def create_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(
                f"cannot create {self.root}: {e.strerror or e}", driver=self.name
            ) from None

    def _abs(self, path: str, *, allow_root: bool = False) -> Path:
        check_path(path, allow_root=allow_root)
        return self.root / path if path else self.root

    def _rel(self, p: Path) -> str:
        return p.relative_to(self.root).as_posix()

    def list(self, prefix: str = "") -> list[Entry]:
        target = self._abs(prefix, allow_root=True)
        entries: list[Entry] = []
        try:
            with os.scandir(target) as it:
                for de in it:
                    if de.name.startswith(TEMP_MARK):
                        continue
                    is_dir = de.is_dir(follow_symlinks=True)
                    rel = f"{prefix}/{de.name}" if prefix else de.name
                    entries.append(_entry(rel, de.stat(), is_dir))
        except (FileNotFoundError, NotADirectoryError):
            if prefix == "":
                return []
            raise PathNotFound(prefix, driver=self.name) from None
        except OSError as e:
            raise StorageError(str(e), path=prefix, driver=self.name) from None
        return entries

    def walk(self, prefix: str = "", *, temporaries: bool = False) -> Iterator[Entry]:
        top = self._abs(prefix, allow_root=True)
        stack = [top]
        while stack:
            directory = stack.pop()
            try:
                it = os.scandir(directory)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as e:
                raise StorageError(str(e), path=prefix, driver=self.name) from None
            with it:
                for de in it:
                    temporary = de.name.startswith(TEMP_MARK)
                    if temporary and not temporaries:
                        continue
                    if de.is_dir(follow_symlinks=True):
                        stack.append(Path(de.path))
                    else:
                        try:
                            st = de.stat()
                        except FileNotFoundError:
                            continue  # deleted while we walked
                        yield _entry(self._rel(Path(de.path)), st, False, temporary)

    def stat(self, path: str) -> Entry:
        target = self._abs(path)
        try:
            st = target.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(path, driver=self.name) from None
        return _entry(path, st, target.is_dir())

    def get(self, path: str) -> bytes:
        target = self._abs(path)
        try:
            return target.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFound(path, driver=self.name) from None
        except OSError as e:
            raise StorageError(str(e), path=path, driver=self.name) from None

    def put_if_absent(self, path: str, data: bytes) -> bool:
        target = self._abs(path)
        temp = target.with_name(f"{TEMP_MARK}{uuid.uuid4().hex}")
        try:
            with _create(temp) as f:
                f.write(data)
            os.link(temp, target)  # refuses an existing target, atomically
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return True

    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        target = self._abs(path)
        try:
            f = open(target, "rb")  # noqa: SIM115 - the caller closes it
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFound(path, driver=self.name) from None
        f.seek(offset)
        if length is None:
            return f
        return LimitedReader(f, length)

    def writer(self, path: str, append: bool = False) -> Writer:
        try:
            return LocalWriter(self, path, append)
        except IsADirectoryError:
            raise StorageError("is a directory", path=path, driver=self.name) from None

    def move(self, src: str, dst: str) -> None:
        source, target = self._abs(src), self._abs(dst)
        if not source.is_file():
            raise PathNotFound(src, driver=self.name)
        for attempt in (1, 2):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(source, target)
                break
            except FileNotFoundError:
                if not source.exists():
                    raise PathNotFound(src, driver=self.name) from None
                if attempt == 2:
                    raise StorageError(
                        "target directory vanished", path=dst, driver=self.name
                    ) from None
        self._prune(source.parent)

    def delete(self, path: str) -> None:
        target = self._abs(path)
        try:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        except FileNotFoundError:
            raise PathNotFound(path, driver=self.name) from None
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
            except OSError as e:
                report.failed[path] = str(e)
            except StorageError as e:
                report.failed[path] = str(e)
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
