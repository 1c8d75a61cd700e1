"""CPU time of processes, for benchmarks that report where CPU goes (Linux `/proc`).

    usage = CpuUsage({"regtool serve": proc.pid, "swift proxy": proxy_pid})
    ...  # the work
    usage.seconds()   # {"regtool serve": 3.1, "swift proxy": 9.8}: CPU seconds since

A server that forks workers (Swift with `workers = N`) is counted with every process
below it, so the figure covers the whole service.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Clock ticks a second, the unit of `/proc/<pid>/stat`'s times.
TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # after the command name, which may hold spaces and parentheses
    return text.rsplit(")", 1)[1].split()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields:
                tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` and every live process below it (each
    process's own time: a child's is counted while it lives)."""
    tree = _children()
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        fields = _stat(current)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime, stime
        todo.extend(tree.get(current, []))
    return total / TICKS


class CpuUsage:
    """CPU seconds each named process tree uses from the moment this is made."""

    def __init__(self, pids: dict[str, int]):
        self.pids = dict(pids)
        self._start = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}

    def seconds(self) -> dict[str, float]:
        return {name: tree_cpu_seconds(pid) - self._start[name] for name, pid in self.pids.items()}


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` shows them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"
