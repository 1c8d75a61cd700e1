"""Which process holds a lease, where that can be told (Linux `/proc`): a lease's holder
is `<boot id>/<pid namespace>/<pid>/<start>`, this boot of this host (`boot_id`), the pid
namespace it runs in, its pid, and its start time in clock ticks after boot (so that a
pid used again by another process is not taken for the holder). Source: proc(5).

A holder is known to be gone only when it ran on this boot, in this pid namespace (a
container elsewhere on the host sees other pids), and no process of its pid and start
time runs now. Anything else (another host, another namespace, no `/proc`, a lease
written before holders were named) is not known to be gone.
"""

from __future__ import annotations

import os

_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_cached: tuple[int, str | None] | None = None  # (pid, holder): a fork has its own


def _start_ticks(pid: int) -> str | None:
    """Field 22 of `/proc/<pid>/stat` (start time after boot, clock ticks); None if no
    such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _here() -> tuple[str, str] | None:
    """(boot id, pid namespace) of this process; None without `/proc`."""
    try:
        with open(_BOOT_ID) as f:
            boot = f.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    inode = namespace.partition("[")[2].rstrip("]")
    if not boot or not inode.isdigit():
        return None
    return boot, inode


def current_holder() -> str | None:
    """This process as a lease names its holder; None where it cannot be told."""
    global _cached
    pid = os.getpid()
    if _cached is None or _cached[0] != pid:
        here, start = _here(), _start_ticks(pid)
        _cached = (pid, f"{here[0]}/{here[1]}/{pid}/{start}" if here and start else None)
    return _cached[1]


def holder_gone(holder: str | None) -> bool:
    """Whether the process `holder` names (as `current_holder` gives) surely no longer
    runs (see the module docstring)."""
    if not holder:
        return False
    parts = holder.split("/")
    here = _here()
    if len(parts) != 4 or here is None or (parts[0], parts[1]) != here:
        return False
    pid, start = parts[2], parts[3]
    return pid.isdigit() and _start_ticks(int(pid)) != start
