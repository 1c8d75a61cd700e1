"""`RootKept`: a store whose root goes away fails its reads instead of reading empty;
an empty store, and a path missing from a store that is there, read as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from regtool.errors import PathNotFound, StorageError
from regtool.storage.local import LocalDriver
from regtool.storage.rooted import RootKept


def test_reads_of_a_root_gone_away_fail(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    driver = RootKept(LocalDriver(root))
    assert driver.list("") == [] and list(driver.walk("repositories")) == []
    with pytest.raises(PathNotFound):
        driver.get("nothing")
    driver.put("a/b", b"x")
    assert [e.path for e in driver.walk("a")] == ["a/b"]

    root.rename(tmp_path / "elsewhere")
    reads = (
        lambda: driver.list(""),
        lambda: list(driver.walk("a")),
        lambda: driver.get("a/b"),
        lambda: driver.stat("a/b"),
        lambda: driver.open("a/b"),
        lambda: driver.exists("a/b"),
    )
    for read in reads:
        with pytest.raises(StorageError, match=r"cannot read storage .*no longer there") as e:
            read()
        assert not isinstance(e.value, FileNotFoundError)
