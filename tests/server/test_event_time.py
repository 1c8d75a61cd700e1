"""An event's time is written as distribution writes it, the same as `datetime` makes it."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from regtool.server.notifications.events import _rfc3339


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_event_time_is_datetimes(timestamp: float) -> None:
    expected = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert _rfc3339(timestamp) == expected


def test_event_times_within_one_second() -> None:
    assert _rfc3339(1_700_000_000.25) == "2023-11-14T22:13:20.250000Z"
    assert _rfc3339(1_700_000_000.9999996) == "2023-11-14T22:13:21.000000Z"
    assert _rfc3339(1_700_000_001.5) == "2023-11-14T22:13:21.500000Z"
