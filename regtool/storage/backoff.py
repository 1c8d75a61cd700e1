"""How long to wait between attempts at a call that met a transient fault, and when to
stop: the one policy of the retry wrapper and of the steps drivers retry inside a call."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from regtool.errors import TransientError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """How long to wait between attempts, and when to stop.

    A fault that carries the server's `retry_after` (HTTP `Retry-After`, seconds) waits
    that long plus up to a quarter more, so that clients throttled together do not all come
    back at the same instant; other faults wait `delay` seconds doubling per attempt, up to
    `max_delay`, each wait drawn between half and all of that ("equal jitter"). A call stops
    after `attempts` tries in all, or sooner when the next wait would take the waits of the
    call past `budget` seconds: a server asking for a longer wait than that gets the fault
    back at once rather than a sleep that ends in the same refusal.
    """

    attempts: int = 4
    delay: float = 0.2
    max_delay: float = 10.0
    budget: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random  # in [0, 1)

    def pause(self, error: TransientError, failures: int, waited: float) -> float:
        """Wait before the attempt after the `failures`-th failure of a call whose waits
        so far took `waited` seconds, and return the wait (seconds); raise `error` when
        there is to be no further attempt."""
        if failures >= self.attempts:
            raise error
        if error.retry_after is not None:
            wait = max(0.0, error.retry_after) * (1 + self.random() / 4)
        else:
            wait = min(self.max_delay, self.delay * 2 ** (failures - 1)) * (1 + self.random()) / 2
        if waited + wait > self.budget:
            raise error
        log.warning(
            "%s (attempt %d of %d), retrying in %.1f s", error, failures, self.attempts, wait
        )
        self.sleep(wait)
        return wait


def retried(
    fn: Callable[[], T], backoff: Backoff | None, after_fault: Callable[[], T] | None = None
) -> T:
    """`fn()`, tried again on `TransientError` as `backoff` says (attempts after a fault
    call `after_fault` instead, when given); tried once when `backoff` is None."""
    failures, waited = 0, 0.0
    while True:
        try:
            return fn() if failures == 0 or after_fault is None else after_fault()
        except TransientError as e:
            if backoff is None:
                raise
            failures += 1
            waited += backoff.pause(e, failures, waited)
