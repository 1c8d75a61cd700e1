"""Small pure pieces: segment names, durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import typer

from regtool.cli.duration_option import parse_duration
from regtool.layout.segments import segment_sets
from regtool.storage.base import Entry

T1 = datetime(2026, 1, 1, tzinfo=UTC)
T2 = datetime(2026, 1, 2, tzinfo=UTC)


def test_segment_sets_group_distribution_and_regtool_names() -> None:
    dist = "segments/2f6/46f636b65722f72" + "a" * 40
    ours = "segments/abc/" + "d" * 37
    entries = [
        Entry(f"{dist}/0000000000000001", size=10, modified=T1),
        Entry(f"{dist}/0000000000000002", size=5, modified=T2),
        Entry(f"{ours}/0000000000000001", size=3, modified=None),
        Entry("segments/abc/notes.txt", size=1),  # not a segment
        Entry("segments/ABC/" + "d" * 37 + "/0000000000000001", size=1),  # not hex
        Entry("other/abc/" + "d" * 37 + "/0000000000000001", size=1),  # elsewhere
    ]
    sets = segment_sets("segments", entries)
    assert set(sets) == {dist, ours}
    assert (sets[dist].size, sets[dist].newest) == (15, T2)
    assert (sets[ours].size, sets[ours].newest) == (3, None)  # unknown age: never "old"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("90s", 90), ("30m", 1800), ("1h30m", 5400), ("2d", 172800), ("1w", 604800)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "1x", "h", "-1h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_duration(text)
