"""Deleting in storage, shared by the V2 and V1 runs: compare times, delete in parts."""

from __future__ import annotations

from datetime import datetime

from regtool.concurrency import map_outcomes
from regtool.storage.base import Driver

#: Fewest paths worth a `delete_many` request of their own.
_MIN_PART = 8


def same_time(a: datetime | None, b: datetime | None) -> bool:
    """Whether a listing's and a stat's modification times are one write: to the
    millisecond (Swift's listing and HEAD round differently below it; SFTP gives whole
    seconds to both, so there a re-push within the same second goes unseen)."""
    if a is None or b is None:
        return a is b
    return abs((a - b).total_seconds()) < 0.001


def delete_paths(driver: Driver, groups: list[tuple[str, ...]], jobs: int) -> dict[str, str]:
    """`delete_many` in up to `jobs` concurrent parts: a Swift bulk delete works through
    its names a few at a time, so one request for thousands is slower than several at
    once. A group (one tag's files) stays in one part, so that the local and SFTP drivers
    remove its emptied directory. Returns path -> error for what was not deleted."""
    total = sum(len(g) for g in groups)
    size = max(_MIN_PART, -(-total // jobs))
    parts: list[tuple[str, ...]] = []
    current: list[str] = []
    for group in groups:
        current += group
        if len(current) >= size:
            parts.append(tuple(current))
            current = []
    if current:
        parts.append(tuple(current))
    failed: dict[str, str] = {}
    for part, report in map_outcomes(driver.delete_many, parts, jobs).items():
        if isinstance(report, Exception):
            failed.update(dict.fromkeys(part, str(report)))
        else:
            failed.update(report.failed)
    return failed
