"""Bounded fan-out of blocking storage calls over a thread pool."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Requests in flight at once unless a command says otherwise (`--jobs`).
DEFAULT_JOBS = 16


def map_outcomes(
    fn: Callable[[T], R], items: Iterable[T], jobs: int = DEFAULT_JOBS
) -> dict[T, R | Exception]:
    """Call `fn` on each distinct item, `jobs` at a time; each item maps to its result or
    to the `Exception` it raised, so one bad object never stops the rest."""

    def outcome(item: T) -> R | Exception:
        try:
            return fn(item)
        except Exception as e:  # the caller decides which failures matter
            return e

    unique = list(dict.fromkeys(items))
    if len(unique) <= 1 or jobs <= 1:
        return {item: outcome(item) for item in unique}
    with ThreadPoolExecutor(max_workers=min(jobs, len(unique))) as pool:
        return dict(zip(unique, pool.map(outcome, unique), strict=True))
