"""Small filesystems with real faults: a tmpfs of a few MiB fills up (ENOSPC), and can be
made read-only (EROFS). Mounting needs root; elsewhere the test is `unavailable`.

    with small_tmpfs(tmp_path / "full", size=2 << 20) as mount:
        ...                      # a directory on its own 2 MiB filesystem
        mount.read_only(True)    # remount read-only
        mount.fill()             # take every free byte (a file `filler`); returns its path
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.services import unavailable


class Tmpfs:
    def __init__(self, path: Path):
        self.path = path

    def read_only(self, on: bool) -> None:
        mode = "ro" if on else "rw"
        _mount("-o", f"remount,{mode}", str(self.path))

    def fill(self, name: str = "filler") -> Path:
        """Write zeros until the filesystem refuses another byte."""
        filler = self.path / name
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (1 << 20, 4096, 1):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * size)
        finally:
            os.close(fd)
        return filler


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"mount {' '.join(args)}: {result.stderr.strip()}")


@contextlib.contextmanager
def small_tmpfs(path: Path, size: int) -> Iterator[Tmpfs]:
    """A tmpfs of `size` bytes mounted at `path` (created), unmounted afterwards."""
    if os.geteuid() != 0:
        unavailable("mounting a small tmpfs (for a full disk) needs root")
    path.mkdir(parents=True, exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    except (OSError, RuntimeError) as e:
        unavailable(f"cannot mount a tmpfs: {e}")
    try:
        yield Tmpfs(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
