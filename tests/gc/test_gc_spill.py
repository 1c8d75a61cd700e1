"""Past a threshold, gc's working sets (the listing of `repositories/` by directory, the
mark set, what each manifest references, the revisions, the blob listing and the plan)
live in sqlite files in temporary directories: the plan, the sweep and the figures must be
exactly those of the run in memory, on local storage and on Swift, and the directories
must go when gc is done with them."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import regtool.gc.sweep as gc_sweep
from regtool.facts import open_cache
from regtool.gc import GcOptions, GcResult, collect
from regtool.gc.model import Doomed
from regtool.gc.snapshot import take_snapshot
from regtool.gc.spill import Groups, KeyMap, KeySet, Plan, pack_time, unpack_time
from regtool.layout.manifests import store_identity
from regtool.layout.v2 import SWIFT_ROOT, V2Layout
from regtool.storage.base import Driver, Entry, Prune
from regtool.storage.retry import RetryingDriver
from tests.handstore import HandStore

NOW = GcOptions(dry_run=True, min_age=timedelta(0), settle=timedelta(0), delete_untagged=True)
NOW_CUTOFF = datetime.now(UTC)


def _spill_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "regtool-gc-*")))


def _store(root: Path) -> HandStore:
    return _fill(HandStore(root))


def _fill(store: HandStore) -> HandStore:
    """Tagged images, untagged ones, orphaned blobs, stale `_layers` links, a repository
    nested in another and a first push abandoned before its manifest."""
    store.image("team", "v1", layers=2)
    store.blob("team/abandoned", os.urandom(50))
    for n in range(4):
        store.image(f"team/app{n}", "v1", layers=3)
        store.image(f"team/app{n}", "v2", layers=2)  # v2 moved on below: v1 untagged
        old = store.image(f"team/app{n}", "old", layers=2)
        store.driver.delete(store.layout.tag_dir(f"team/app{n}", "old"))
        assert old.digest
    for n in range(30):
        store.blob("team/app0", os.urandom(100 + n))  # linked, referenced by nothing
    return store


def _summary(result: GcResult) -> tuple[object, ...]:
    kinds = ("revision-link", "layer-link", "manifest", "blob")
    return (
        list(result.items),
        result.marked_blobs,
        [result.count(k) for k in kinds],
        [result.bytes(k) for k in kinds],
        result.bytes_freed,
        result.warnings,
    )


@pytest.mark.parametrize("dry_run", [True, False])
def test_the_spilled_plan_is_the_plan_in_memory(
    tmp_path: Path, dry_run: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gc_sweep, "_DELETE_CHUNK", 4)  # the sweep reads the plan in chunks
    options = replace(NOW, dry_run=dry_run)
    left = _store(tmp_path / "left")
    shutil.copytree(tmp_path / "left", tmp_path / "right")  # the same store twice
    right = HandStore(tmp_path / "right")
    before = _spill_dirs()
    in_memory = collect(left.layout, "t", options)
    spilled = collect(right.layout, "t", replace(options, in_memory=3))
    assert spilled.items.spilled and not in_memory.items.spilled
    assert in_memory.count("blob") >= 30 and in_memory.count("manifest") >= 4
    assert _summary(spilled) == _summary(in_memory)
    assert [i.name for i in spilled.items if i.kind == "blob"] == sorted(
        i.name for i in in_memory.items if i.kind == "blob"
    )
    if not dry_run:  # the same deleted, the same left
        assert sorted(_files(left.driver)) == sorted(_files(right.driver))
    spilled.items.close()
    assert _spill_dirs() == before  # the mark set's and the blob items' went with gc


def _files(driver: Driver) -> list[str]:
    return [e.path for e in driver.walk("")]


def test_repositories_are_marked_a_batch_of_whole_directories_at_a_time(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    whole = store.layout.index_entries(store.driver.walk(""), include_all=True)
    snapshot = take_snapshot(store.layout, NOW_CUTOFF, threshold=5)
    assert snapshot.directories.spilled
    batches = list(snapshot.batches(store.layout, 5))
    assert len(batches) > 3
    names = [name for batch in batches for name in batch]
    assert names == sorted(whole) and len(set(names)) == len(names)
    for batch in batches:
        for name, directory in batch.items():
            assert directory == whole[name]
    snapshot.close()
    assert not snapshot.directories.spilled


class Walks(RetryingDriver):
    """A real driver that records the prefixes it walks."""

    def __init__(self, inner: Driver):
        super().__init__(inner)
        self.walked: list[str] = []

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        self.walked.append(prefix)
        return super().walk(prefix, temporaries=temporaries, prune=prune)


@pytest.fixture
def swift_pair(swift_service: Any) -> Iterator[tuple[HandStore, HandStore]]:
    """The same store in two Swift containers (Swift naming)."""
    drivers = [Walks(swift_service.driver(f"spill-{uuid.uuid4().hex[:8]}")) for _ in "ab"]
    left, right = (HandStore(driver=d) for d in drivers)
    for store in (left, right):
        store.layout = V2Layout(store.driver, SWIFT_ROOT)
    try:
        _fill(left)
        for path in _files(left.driver):
            right.driver.put(path, left.driver.get(path))
        yield left, right
    finally:
        for driver in drivers:
            driver.delete_many(_files(driver))
            driver.close()


@pytest.mark.swift
@pytest.mark.parametrize("dry_run", [True, False])
def test_on_swift_the_spilled_run_is_the_run_in_memory_with_one_walk_of_blobs(
    swift_pair: tuple[HandStore, HandStore], dry_run: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gc_sweep, "_DELETE_CHUNK", 4)
    left, right = swift_pair
    options = replace(NOW, dry_run=dry_run)
    results = []
    for store, in_memory in ((left, 100_000), (right, 3)):
        with open_cache(store_identity(store.layout)) as facts:
            assert isinstance(store.driver, Walks)
            store.driver.walked.clear()
            results.append(
                collect(store.layout, "t", replace(options, in_memory=in_memory), facts=facts)
            )
            # the facts' validity and the plan from the same listing of blobs/
            assert store.driver.walked.count(store.layout.blobs_dir()) == 1
    in_memory, spilled = results
    assert spilled.items.spilled and not in_memory.items.spilled
    assert in_memory.count("blob") >= 30 and in_memory.count("manifest") >= 4
    assert _summary(spilled) == _summary(in_memory)
    if not dry_run:
        assert sorted(_files(left.driver)) == sorted(_files(right.driver))
    spilled.items.close()


def test_spilled_times_are_exact() -> None:
    for when in (datetime(2026, 11, 30, 21, 0, 0, 999_999, UTC), datetime(1969, 1, 1, tzinfo=UTC)):
        assert unpack_time(pack_time(when)) == when
    assert unpack_time(pack_time(None)) is None


def test_a_key_map_and_groups_spill_and_answer_alike() -> None:
    keys = [f"{n:064x}" for n in range(300)]
    memory: KeyMap[tuple[int, str]] = KeyMap()
    spilled: KeyMap[tuple[int, str]] = KeyMap(threshold=10)
    for m in (memory, spilled):
        m.update((k, (n, "x")) for n, k in enumerate(keys))
        m["ab" * 64] = (-1, "sha512")
    assert spilled.spilled and not memory.spilled
    assert len(spilled) == len(memory) == 301
    for key in [*keys, "ab" * 64, f"{5000:064x}", "not hex"]:
        assert spilled.get(key) == memory.get(key) and (key in spilled) == (key in memory)
    assert sorted(spilled.items()) == sorted(memory.items())
    names = ["b", "a/c", "a", "\udcff", "a/b"]  # one not UTF-8 (a surrogate)
    in_memory: Groups[int] = Groups()
    on_disk: Groups[int] = Groups(threshold=3)
    for groups in (in_memory, on_disk):
        for n in range(20):
            groups.add(names[n % len(names)], n)
    assert on_disk.spilled and not in_memory.spilled
    assert list(on_disk.groups()) == list(in_memory.groups())
    assert [n for n, _ in in_memory.groups()] == ["a", "a/b", "a/c", "b", "\udcff"]
    assert dict(in_memory.groups())["a"] == [2, 7, 12, 17]
    where = _spill_dirs()
    for closing in (spilled, on_disk):
        closing.close()
    assert len(_spill_dirs()) == len(where) - 2


def test_a_key_set_spills_and_answers_alike() -> None:
    keys = [f"{n:064x}" for n in range(1000)]
    memory, spilled = KeySet(keys), KeySet(keys, threshold=10)
    spilled |= [keys[0], f"{5000:064x}"]
    memory |= [keys[0], f"{5000:064x}"]
    assert spilled.spilled and not memory.spilled
    assert len(spilled) == len(memory) == 1001
    for key in [*keys, f"{5000:064x}", f"{5001:064x}", "not hex", "ab" * 64]:
        assert (key in spilled) == (key in memory)
    where = _spill_dirs()
    spilled.close()
    assert _spill_dirs() < where and len(spilled) == 0


def test_a_plan_keeps_its_order_and_sorts_its_sorted_batches_across_a_spill() -> None:
    def item(name: str, kind: str = "blob", size: int = 1) -> Doomed:
        return Doomed(kind, name, (f"p/{name}",), size, "why")

    first = [item("z"), item("a")]
    batch = [item(f"{n:03d}") for n in (5, 3, 9, 1, 7)]
    last = [item("y", "upload", 10), item("b", "upload", 20)]
    one_by_one = [item("m"), item("c")]
    for threshold in (100, 3, 1, 9):
        plan = Plan(first, threshold=threshold)
        plan.extend_sorted(batch)
        plan += last
        for each in one_by_one:
            plan.append(each)
        plan.extend_sorted(one_by_one)
        want = first + sorted(batch, key=lambda i: i.name) + last + one_by_one
        want += sorted(one_by_one, key=lambda i: i.name)
        assert list(plan) == want and plan == want and len(plan) == 13
        assert plan.spilled == (threshold < 13)
        assert (plan.counts["blob"], plan.sizes["upload"]) == (11, 30)
        plan.close()
        assert list(plan) == []
