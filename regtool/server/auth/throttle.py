"""Failed logins slow down the address they come from: after `FREE_FAILURES` failures
within `WINDOW` seconds, each further attempt from that address (right or wrong) waits
`BASE_DELAY` seconds, doubled per failure, at most `MAX_DELAY`, before its password is
checked. Attempts made at once queue behind each other: forty guesses sent together
take forty delays, not one. A success clears the address."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

FREE_FAILURES = 3
WINDOW = 300.0
BASE_DELAY = 0.25
MAX_DELAY = 8.0
#: Addresses remembered at most; past it, those quiet longest are forgotten first.
MAX_ADDRESSES = 10_000


@dataclass
class _Record:
    failures: int
    last: float
    free_at: float = 0.0  # when the next waiting attempt may be checked


class LoginThrottle:
    """Per-address failure counts. `clock` (seconds) and `sleep` are the event loop's
    unless a test gives its own."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self._clock = clock
        self._sleep = sleep
        self._records: dict[str, _Record] = {}

    def delay(self, address: str) -> float:
        """Seconds the next attempt from `address` waits (0 for most addresses)."""
        record = self._records.get(address)
        if record is None or self._clock() - record.last > WINDOW:
            return 0.0
        extra = record.failures - FREE_FAILURES
        return 0.0 if extra < 0 else min(BASE_DELAY * 2**extra, MAX_DELAY)

    async def wait(self, address: str) -> None:
        """Waits `delay(address)` seconds after the attempts from `address` already
        waiting (each takes its turn: parallel guesses gain nothing)."""
        seconds = self.delay(address)
        if seconds:
            record = self._records[address]
            now = self._clock()
            record.free_at = max(now, record.free_at) + seconds
            await self._sleep(record.free_at - now)

    def failed(self, address: str) -> None:
        now = self._clock()
        record = self._records.pop(address, None)
        if record is None or now - record.last > WINDOW:
            record = _Record(0, now)
        record.failures += 1
        record.last = now
        self._records[address] = record  # most recent last: dicts keep insertion order
        while len(self._records) > MAX_ADDRESSES:
            del self._records[next(iter(self._records))]

    def succeeded(self, address: str) -> None:
        self._records.pop(address, None)
