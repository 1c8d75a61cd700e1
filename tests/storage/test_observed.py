"""`ObservedDriver` keeps what its driver says of itself: a listing with checksums (Swift)
still stands for a request per object behind the server's metrics."""

from __future__ import annotations

from pathlib import Path

from regtool.storage.local import LocalDriver
from regtool.storage.observed import ObservedDriver


class ListsChecksums(LocalDriver):
    listed_checksums = True
    has_large_objects = True


def test_an_observed_driver_tells_what_its_driver_tells(tmp_path: Path) -> None:
    for inner in (LocalDriver(tmp_path), ListsChecksums(tmp_path)):
        observed = ObservedDriver(inner, lambda operation, failed: None)
        assert observed.listed_checksums == inner.listed_checksums
        assert observed.has_large_objects == inner.has_large_objects
        assert observed.name == inner.name
