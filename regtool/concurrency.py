"""Bounded fan-out of blocking storage calls over a thread pool."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from regtool.errors import PathNotFound

T = TypeVar("T")
R = TypeVar("R")

#: Requests in flight at once unless a command says otherwise (`--jobs`).
DEFAULT_JOBS = 16

#: Calls submitted ahead per worker. `Executor.map` would submit every item at once, and
#: a future costs about a kilobyte: 75,000 manifests of a large gc would hold 75 MB.
_AHEAD_PER_JOB = 4


def map_outcomes(
    fn: Callable[[T], R], items: Iterable[T], jobs: int = DEFAULT_JOBS
) -> dict[T, R | Exception]:
    """Call `fn` on each distinct item, `jobs` at a time; each item maps to its result or
    to the `Exception` it raised, so one bad object never stops the rest. Results are in
    the order of `items`."""

    def outcome(item: T) -> R | Exception:
        try:
            return fn(item)
        except Exception as e:  # the caller decides which failures matter
            return e

    unique = list(dict.fromkeys(items))
    if len(unique) <= 1 or jobs <= 1:
        return {item: outcome(item) for item in unique}
    results: dict[T, R | Exception] = {}
    pending: deque[tuple[T, Future[R | Exception]]] = deque()
    with ThreadPoolExecutor(max_workers=min(jobs, len(unique))) as pool:
        for item in unique:
            if len(pending) >= jobs * _AHEAD_PER_JOB:
                done, future = pending.popleft()
                results[done] = future.result()
            pending.append((item, pool.submit(outcome, item)))
        for done, future in pending:
            results[done] = future.result()
    return results


def raise_unless_missing(outcomes: Iterable[object]) -> None:
    """Raises the first failure among `outcomes` other than `PathNotFound` (an object
    deleted since it was listed)."""
    for outcome in outcomes:
        if isinstance(outcome, Exception) and not isinstance(outcome, PathNotFound):
            raise outcome
