"""gc reads what a tag points at before deleting anything that depends on it: a local or
SFTP listing gives a tag link's size, not its content, and a tag whose history holds one
digest may point at another of the same length (written by hand, a tool, or a registry
that never wrote the history entry). `ls` may take the history's word; gc must not."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from regtool.gc import GcOptions, GcResult, collect
from regtool.layout.v2_write import write_link
from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from tests.handstore import HandImage, HandStore

NOW = GcOptions(min_age=timedelta(0), settle=timedelta(0), delete_untagged=True)


def repoint_without_history(store: HandStore) -> tuple[HandImage, HandImage]:
    """app:1 first pointed at `a` (its only history entry); its current link now names
    `b`, a revision of the same length that no tag's history holds."""
    a = store.image("app", "1")
    b = store.image("app", "2")
    store.driver.delete(store.layout.tag_dir("app", "2"))
    write_link(store.layout, store.layout.tag_current_link("app", "1"), b.digest)
    return a, b


def gone(result: GcResult, kinds: tuple[str, ...] = ("manifest", "blob")) -> set[str]:
    return {i.name for i in result.items if i.kind in kinds}


@pytest.fixture(params=["local", "sftp"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    if request.param == "local":
        yield LocalDriver(tmp_path)
        return
    sshd: Any = request.getfixturevalue("sshd_service")
    with sshd.driver(f"gc-tags-{uuid.uuid4().hex[:8]}") as sftp:
        yield sftp


def test_the_tag_link_is_read_before_deleting(driver: Driver) -> None:
    store = HandStore(driver=driver)
    a, b = repoint_without_history(store)
    assert store.layout.scan_repositories()["app"].listed_tag_digest("1") == a.digest  # ls

    result = collect(store.layout, "t", NOW)
    assert result.ok
    assert gone(result) == {str(d) for d in (a.digest, *a.blobs)}
    assert store.driver.exists(store.layout.blob_data(b.digest))
    assert store.driver.exists(store.layout.revision_link("app", b.digest))
    assert all(store.driver.exists(store.layout.blob_data(d)) for d in b.blobs)
    assert store.layout.tag_digest("app", "1") == b.digest


def test_a_tag_link_naming_no_digest_keeps_its_repository(tmp_path: Path) -> None:
    store = HandStore(tmp_path)
    a = store.image("app", "1")
    store.image("app", "2")
    store.driver.delete(store.layout.tag_dir("app", "2"))
    link = store.path(store.layout.tag_current_link("app", "1"))
    link.write_bytes(link.read_bytes().upper())  # SHA256:..., the same length
    result = collect(store.layout, "t", replace(NOW, dry_run=True))
    assert gone(result, ("manifest", "blob", "revision-link", "layer-link")) == set()
    (warning,) = result.warnings
    assert warning.startswith("app: tag 1 unreadable") and str(a.digest) not in warning
