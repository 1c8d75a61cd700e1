"""Pruning a registry that serves meanwhile: a tag re-pushed between planning and deletion
stays and pulls intact; a manifest something new reaches stays. Interleavings are made
deterministic with the run's hooks, the pushes are skopeo's through distribution."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from regtool.layout.v2 import FILESYSTEM_ROOT, SWIFT_ROOT, V2Layout
from regtool.retention import (
    CHANGED,
    DELETED,
    Hooks,
    Policy,
    PolicySelector,
    RetentionOptions,
    make_rule,
    run_retention,
)
from regtool.storage.local import LocalDriver
from tests.retention.scenario import manifest_status
from tests.services.images import build_image, pull, push


@dataclass
class Served:
    host: str
    layout: V2Layout


@pytest.fixture(params=["directory", "swift"])
def served(request: pytest.FixtureRequest, image_tools: None) -> Served:
    """distribution serving a store, and the store's layout as regtool opens it."""
    if request.param == "directory":
        dist = request.getfixturevalue("distribution_fs")
        return Served(dist.host, V2Layout(LocalDriver(dist.root), FILESYSTEM_ROOT))
    dist = request.getfixturevalue("distribution_swift")
    return Served(dist.host, V2Layout(dist.service.driver(dist.container), SWIFT_ROOT))


def _keep_last(n: int) -> PolicySelector:
    return PolicySelector(Policy((make_rule("test", keep_last=n),)))


def test_a_tag_re_pushed_after_planning_is_kept(served: Served, tmp_path: Path) -> None:
    oci = tmp_path / "oci"
    host = served.host
    old = {t: push(build_image(oci, t, size=500), host, "app", t) for t in ("t1", "t2", "t3")}
    fresh = build_image(oci, "fresh", size=500)

    def re_push() -> None:  # between the plan and the first deletion
        push(fresh, host, "app", "t1")

    layout = served.layout
    plan = run_retention(layout, "here", _keep_last(1), RetentionOptions(dry_run=True))
    result = run_retention(
        layout, "here", _keep_last(1), RetentionOptions(hooks=Hooks(before_tags=re_push))
    )
    assert {t.tag: t.keep for t in plan.tags()} == {"t1": False, "t2": False, "t3": True}
    outcome = {t.tag: (t.keep, t.outcome) for t in result.tags()}
    assert outcome == {"t1": (True, CHANGED), "t2": (False, DELETED), "t3": (True, None)}
    assert pull(host, "app", "t1", tmp_path / "pulled") == fresh.digest
    assert manifest_status(host, "app", "t2") == 404
    assert manifest_status(host, "app", old["t2"]) == 404
    # t1's old manifest went with nothing else naming it; t1 now names the fresh one
    assert manifest_status(host, "app", old["t1"]) == 404
    assert not result.warnings


def test_a_manifest_a_tag_names_again_before_manifests_go_is_kept(
    served: Served, tmp_path: Path
) -> None:
    oci = tmp_path / "oci"
    host = served.host
    images = {t: build_image(oci, t, size=500) for t in ("t1", "t2")}
    for tag, image in images.items():
        push(image, host, "app", tag)

    def push_again() -> None:  # after t1 went, before its manifest does
        push(images["t1"], host, "app", "again")

    layout = served.layout
    hooks = Hooks(before_manifests=push_again)
    result = run_retention(layout, "here", _keep_last(1), RetentionOptions(hooks=hooks))
    (t1,) = [t for t in result.tags() if t.tag == "t1"]
    assert (t1.keep, t1.outcome) == (False, DELETED)
    (manifest,) = result.manifests()
    assert manifest.digest == images["t1"].digest
    assert (manifest.keep, manifest.outcome) == (True, CHANGED)
    assert "tag again was written during the run" in manifest.reason
    assert pull(host, "app", "again", tmp_path / "pulled") == images["t1"].digest
    assert manifest_status(host, "app", "t1") == 404


def test_a_tag_re_pushed_with_the_same_manifest_is_kept(served: Served, tmp_path: Path) -> None:
    oci = tmp_path / "oci"
    host = served.host
    images = {t: build_image(oci, t, size=500) for t in ("t1", "t2")}
    for tag, image in images.items():
        push(image, host, "app", tag)

    def same_again() -> None:  # the same manifest, pushed anew: the tag is fresh again
        push(images["t1"], host, "app", "t1")

    hooks = Hooks(before_tags=same_again)
    result = run_retention(served.layout, "here", _keep_last(1), RetentionOptions(hooks=hooks))
    assert {t.tag: (t.keep, t.outcome) for t in result.tags()} == {
        "t1": (True, CHANGED),
        "t2": (True, None),
    }
    assert [(m.keep, m.outcome) for m in result.manifests()] == [(True, CHANGED)]
    assert pull(host, "app", "t1", tmp_path / "pulled") == images["t1"].digest
