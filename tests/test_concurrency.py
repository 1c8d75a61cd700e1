import threading
import time

from regtool.concurrency import map_outcomes


def test_results_follow_the_items_and_failures_become_values():
    def halve(n: int) -> int:
        if n % 2:
            raise ValueError(f"odd {n}")
        return n // 2

    results = map_outcomes(halve, [4, 3, 8, 4, 10], jobs=3)
    assert list(results) == [4, 3, 8, 10]  # distinct, in order
    assert results[4] == 2 and results[8] == 4 and results[10] == 5
    assert isinstance(results[3], ValueError)


def test_only_a_window_of_calls_is_submitted_ahead():
    """A slow first item must not let the rest of a long list pile up as futures."""
    started: list[int] = []
    lock = threading.Lock()
    seen_while_blocked: list[int] = []

    def call(n: int) -> int:
        with lock:
            started.append(n)
        if n == 0:
            time.sleep(0.3)  # the other worker drains whatever was submitted meanwhile
            with lock:
                seen_while_blocked.append(len(started))
        return n

    results = map_outcomes(call, range(500), jobs=2)
    assert list(results) == list(range(500))
    assert seen_while_blocked[0] <= 2 * 4 + 1
