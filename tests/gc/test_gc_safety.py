"""gc on damaged stores and during concurrent pushes: no crash, nothing wanted deleted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from regtool.errors import StorageError
from regtool.gc import GcOptions, collect
from regtool.layout.v2 import FILESYSTEM_ROOT, V2Layout
from regtool.oci import Digest, parse_manifest
from regtool.storage.base import Entry, Prune
from regtool.storage.local import LocalDriver
from tests.gc.scenario import Scenario, build
from tests.services.images import pull

RANDOM = Digest.parse("sha256:" + "ab" * 32)


def _layout(root: Path) -> V2Layout:
    return V2Layout(LocalDriver(root), FILESYSTEM_ROOT)


def _referenced(layout: V2Layout) -> set[Digest]:
    """Every blob that some readable manifest in storage references."""
    wanted = set()
    for entry in layout.driver.walk(layout.blobs_dir()):
        try:
            manifest = parse_manifest(layout.driver.get(entry.path))
        except Exception:
            continue
        wanted |= {d.digest for d in manifest.blobs} | {d.digest for d in manifest.manifests}
    return wanted


def _existing(layout: V2Layout) -> set[Digest]:
    return {d for e in layout.driver.walk(layout.blobs_dir()) if (d := layout.blob_digest(e.path))}


def test_damage_is_reported_and_keeps_what_it_might_reference(
    cli: Any, image_tools: None, distribution_fs: Any, tmp_path: Path
) -> None:
    s: Scenario = build(distribution_fs.host, tmp_path / "oci")
    root = distribution_fs.root
    layout = _layout(root)
    a1 = min(s.untagged & {str(d) for d in layout.scan_repositories()["app"].revisions})
    app_layers = layout.scan_repositories()["app"].layers
    # An untagged manifest that is not JSON; a revision and a tag whose targets are missing
    # or unreadable; an upload without startedat.
    (root / layout.blob_data(Digest.parse(a1))).write_bytes(b"{not json")
    link = root / layout.revision_link("multi", RANDOM)
    link.parent.mkdir(parents=True)
    link.write_text(str(RANDOM))
    tag = root / layout.tag_current_link("multi", "broken")
    tag.parent.mkdir(parents=True)
    tag.write_text("garbage")
    (root / layout.upload_started_at("app", s.upload_id)).unlink()
    wanted = _referenced(layout) & _existing(layout)

    result = cli(
        "gc",
        "-l",
        str(root),
        "--min-age",
        "0",
        "--delete-untagged",
        "--uploads-older-than",
        "0",
        "--settle",
        "0",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    warnings = "\n".join(doc["warnings"])
    assert a1 in warnings and str(RANDOM) in warnings and "broken" in warnings
    left = _existing(layout)
    assert wanted <= left  # what any readable manifest references, kept or not
    assert app_layers <= left  # the damaged repository keeps every blob it links
    uploads = {o["name"] for o in doc["objects"] if o["kind"] == "upload"}
    assert uploads == {s.upload_id, s.first_upload}
    assert not [o for o in doc["objects"] if o["kind"] in ("revision-link", "layer-link")]
    for ref in s.tagged:
        repo, tag_name = ref.split(":")
        pull(distribution_fs.host, repo, tag_name, tmp_path / "pulled" / repo)


def test_default_min_age_keeps_fresh_garbage(
    cli: Any, image_tools: None, distribution_fs: Any, tmp_path: Path
) -> None:
    build(distribution_fs.host, tmp_path / "oci")
    doc = cli.json("gc", "-l", str(distribution_fs.root), "--delete-untagged")
    assert doc["objects"] == [] and doc["totals"]["kept_young"] > 0


def test_links_outside_repositories_go_with_their_blobs(
    image_tools: None, distribution_fs: Any, tmp_path: Path
) -> None:
    """A directory with `_layers` links and no manifest (a first push that never landed
    its manifest): gc deletes the links, so the registry would refuse that manifest now
    rather than accept it over blobs gc deletes."""
    s = build(distribution_fs.host, tmp_path / "oci")
    plain = _layout(distribution_fs.root)
    orphan = Digest.parse(min(s.orphaned))
    link = distribution_fs.root / plain.layer_link("abandoned", orphan)
    link.parent.mkdir(parents=True)
    link.write_text(str(orphan))
    result = collect(plain, "test", GcOptions(min_age=timedelta(0), settle=timedelta(0)))
    assert result.ok
    (item,) = [i for i in result.items if i.repository == "abandoned"]
    assert (item.kind, item.name) == ("layer-link", str(orphan))
    assert str(orphan) in {i.name for i in result.items if i.kind in ("blob", "manifest")}
    assert not link.exists() and orphan not in _existing(plain)


class _PushDuringGc(LocalDriver):
    """Runs `push` just before the `at`-th walk of repositories/: 2 is gc's re-check
    before deleting, 3 the one after it deleted the links (a push that landed between)."""

    def __init__(self, root: Path, push: Any, at: int) -> None:
        super().__init__(root)
        self.walks, self.push, self.at = 0, push, at

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        if prefix.endswith("/repositories"):
            self.walks += 1
            if self.walks == self.at:
                self.push()
        return super().walk(prefix, temporaries=temporaries, prune=prune)


@pytest.mark.parametrize("at", [2, 3], ids=["before-deleting", "after-deleting-links"])
def test_a_push_during_gc_keeps_its_blobs(
    image_tools: None, distribution_fs: Any, tmp_path: Path, at: int
) -> None:
    s = build(distribution_fs.host, tmp_path / "oci")
    plain = _layout(distribution_fs.root)
    orphans = [Digest.parse(d) for d in sorted(s.orphaned)]
    manifest = Digest.parse(s.deleted_image)
    layers = {d.digest for d in parse_manifest(plain.read_blob(manifest)).blobs}
    other = next(d for d in orphans if d != manifest and d not in layers)
    layer_links = {plain.layer_link("app", d) for d in layers}

    def push() -> None:  # a3's manifest tagged again, and a blob mounted into a new repo
        plain.driver.put(plain.revision_link("app", manifest), str(manifest).encode())
        plain.driver.put(plain.tag_current_link("app", "again"), str(manifest).encode())
        plain.driver.put(plain.layer_link("newrepo", other), str(other).encode())

    layout = V2Layout(_PushDuringGc(distribution_fs.root, push, at), FILESYSTEM_ROOT)
    result = collect(layout, "test", GcOptions(min_age=timedelta(0), settle=timedelta(0)))
    assert layout.driver.walks == 3 and result.ok
    assert result.kept_changed >= len(layers) + 2
    deleted = {i.name for i in result.items}
    assert not deleted & {str(d) for d in {manifest, other, *layers}}
    assert {manifest, other, *layers} <= _existing(plain)
    # a3's `_layers` links were planned as stale: kept, or deleted and written back.
    assert all((distribution_fs.root / p).read_text() in map(str, layers) for p in layer_links)
    restored = [w for w in result.warnings if "restored" in w]
    assert bool(restored) == (at == 3)
    pull(distribution_fs.host, "app", "again", tmp_path / "pulled")
    pull(distribution_fs.host, "app", "v1", tmp_path / "pulled-v1")


def test_a_link_that_cannot_be_written_back_is_reported(
    image_tools: None, distribution_fs: Any, tmp_path: Path, mocker: Any
) -> None:
    s = build(distribution_fs.host, tmp_path / "oci")
    plain = _layout(distribution_fs.root)
    manifest = Digest.parse(s.deleted_image)
    layers = {d.digest for d in parse_manifest(plain.read_blob(manifest)).blobs}

    def push() -> None:  # a3's manifest tagged again, just after gc deleted its links
        plain.driver.put(plain.revision_link("app", manifest), str(manifest).encode())
        plain.driver.put(plain.tag_current_link("app", "again"), str(manifest).encode())

    driver = _PushDuringGc(distribution_fs.root, push, 3)
    mocker.patch.object(driver, "put", side_effect=StorageError("disk full"))
    result = collect(
        V2Layout(driver, FILESYSTEM_ROOT),
        "test",
        GcOptions(min_age=timedelta(0), settle=timedelta(0)),
    )
    assert not result.ok
    unrestored = {plain.layer_link("app", d) for d in layers}
    assert {p for p, why in result.failed.items() if "could not be restored" in why} == unrestored
    assert layers <= _existing(plain)  # the blobs stay for when the links are fixed
