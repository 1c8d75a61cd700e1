"""A configuration file the server reads at start-up and again whenever it changes
(its inode, size or modification time), so that an operator's edit takes effect without
a restart: the htpasswd file and the access rules."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from regtool.errors import UsageError

log = logging.getLogger(__name__)

T = TypeVar("T")

_Stamp = tuple[int, int, int]  # inode, size, mtime in ns


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class WatchedFile(Generic[T]):
    """What `load(path)` makes of the file at `path`, made again when the file has
    changed since. `load` raises `UsageError` for a file it cannot use: from the
    constructor that stops the start-up; later it is logged and what was read before
    stays in force (an edit half-written or mistyped must not open or close the
    registry). `changed(value)` is called after each successful re-read."""

    def __init__(
        self,
        path: Path,
        load: Callable[[Path], T],
        changed: Callable[[T], None] | None = None,
    ):
        self.path = path
        self._load = load
        self._changed = changed
        self._lock = threading.Lock()
        self._stamp = _stamp(path)
        self._value = load(path)

    def current(self) -> T:
        """The value for the file as it is now: one `stat` per call, a re-read only
        when it changed."""
        stamp = _stamp(self.path)
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._stamp = stamp
                    try:
                        self._value = self._load(self.path)
                    except UsageError as e:
                        log.error("%s; what was read before stays in force", e)
                    else:
                        if self._changed is not None:
                            self._changed(self._value)
        return self._value
