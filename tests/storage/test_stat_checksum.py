"""`stat` gives a plain Swift object's MD5 (its ETag), as the listing's `hash` does; a
large object's and the other drivers' stat give none."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from regtool.storage.local import LocalDriver


def test_swift_stat_gives_the_md5_of_a_plain_object(swift_service: Any) -> None:
    container = f"stat-{uuid.uuid4().hex[:10]}"
    swift_service.create_container(container)
    driver = swift_service.driver(container)
    try:
        driver.put("a/link", b"sha256:" + b"0" * 64)
        entry = driver.stat("a/link")
        assert entry.checksum == hashlib.md5(b"sha256:" + b"0" * 64).hexdigest()
        (listed,) = list(driver.walk("a"))
        assert listed.checksum == entry.checksum
        with driver.writer("a/large") as w:  # a DLO: its ETag is not the content's MD5
            w.write(b"x" * 100)
            w.commit()
        assert driver.stat("a/large").checksum is None
    finally:
        driver.delete("a")
        driver.close()


def test_local_stat_gives_no_checksum(tmp_path: Path) -> None:
    driver = LocalDriver(tmp_path)
    driver.put("f", b"data")
    assert driver.stat("f").checksum is None
