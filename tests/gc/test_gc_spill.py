"""Past a threshold, gc's mark set and plan live in an sqlite file in a temporary
directory: the plan and the figures must be exactly those of the run in memory, and the
directory must go when gc is done with it."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from regtool.gc import GcOptions, GcResult, collect
from regtool.gc.model import Doomed
from regtool.gc.spill import KeySet, Plan
from tests.handstore import HandStore

NOW = GcOptions(dry_run=True, min_age=timedelta(0), settle=timedelta(0), delete_untagged=True)


def _spill_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "regtool-gc-*")))


def _store(root: Path) -> HandStore:
    """Tagged images, untagged ones, orphaned blobs and stale `_layers` links."""
    store = HandStore(root)
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
def test_the_spilled_plan_is_the_plan_in_memory(tmp_path: Path, dry_run: bool) -> None:
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
    spilled.items.close()
    assert _spill_dirs() == before  # the mark set's and the blob items' went with gc


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
