"""Failed logins slow their address down; others and successes are not slowed."""

from __future__ import annotations

import asyncio

from regtool.server.auth import throttle as t
from regtool.server.auth.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_delays_grow_per_failure_up_to_the_cap_and_a_success_clears() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, sleep=clock.sleep)
    delays = []
    for _ in range(t.FREE_FAILURES + 8):
        delays.append(throttle.delay("10.0.0.1"))
        throttle.failed("10.0.0.1")
    assert delays[: t.FREE_FAILURES + 1] == [0.0] * t.FREE_FAILURES + [t.BASE_DELAY]
    assert delays[t.FREE_FAILURES + 1] == 2 * t.BASE_DELAY
    assert max(delays) == t.MAX_DELAY
    assert throttle.delay("10.0.0.2") == 0.0  # another address is not slowed
    asyncio.run(throttle.wait("10.0.0.1"))
    assert clock.slept == [t.MAX_DELAY]
    throttle.succeeded("10.0.0.1")
    assert throttle.delay("10.0.0.1") == 0.0


def test_failures_are_forgotten_after_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, sleep=clock.sleep)
    for _ in range(t.FREE_FAILURES + 2):
        throttle.failed("10.0.0.1")
    assert throttle.delay("10.0.0.1") > 0
    clock.now += t.WINDOW + 1
    assert throttle.delay("10.0.0.1") == 0.0
    throttle.failed("10.0.0.1")  # counts from one again
    assert throttle.delay("10.0.0.1") == 0.0


def test_memory_is_bounded() -> None:
    throttle = LoginThrottle()
    for i in range(t.MAX_ADDRESSES + 10):
        throttle.failed(f"address-{i}")
    assert len(throttle._records) == t.MAX_ADDRESSES


def test_attempts_made_at_once_take_their_turns() -> None:
    """Forty guesses sent together must not all wait the same few seconds: each waits
    behind those before it."""
    clock = Clock()
    throttle = LoginThrottle(clock=clock, sleep=clock.sleep)
    for _ in range(t.FREE_FAILURES + 1):
        throttle.failed("10.0.0.1")
    delay = throttle.delay("10.0.0.1")

    async def together() -> None:
        await asyncio.gather(*(throttle.wait("10.0.0.1") for _ in range(3)))

    asyncio.run(together())
    assert clock.slept == [delay, 2 * delay, 3 * delay]
    clock.now += 10 * delay  # once the queue has passed, the next waits one delay again
    clock.slept.clear()
    asyncio.run(throttle.wait("10.0.0.1"))
    assert clock.slept == [delay]
