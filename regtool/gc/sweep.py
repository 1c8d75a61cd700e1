"""Sweep: re-check what changed since the mark began, then delete in a safe order."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from regtool.errors import NameInvalid
from regtool.gc.mark import mark
from regtool.gc.model import KINDS, GcResult
from regtool.layout.manifests import ManifestReader
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest, check_name
from regtool.storage.base import Driver, Entry

_LINK_KINDS = ("revision-link", "layer-link")


def layer_links(layout: V2Layout, entries: Iterable[Entry]) -> Iterator[tuple[Digest, Entry]]:
    """Every `_layers` link among walked entries, in repositories with manifests or not."""
    entries = list(entries)
    by_path = {e.path: e for e in entries}
    for name, repo in layout.index_entries(entries, include_all=True).items():
        for digest in repo.layers:
            with contextlib.suppress(NameInvalid):  # a name the layout cannot path
                if entry := by_path.get(layout.layer_link(name, digest)):
                    yield digest, entry


def uploads(layout: V2Layout, entries: Iterable[Entry]) -> dict[tuple[str, str], list[Entry]]:
    """(directory name, upload id) -> the upload's files, in any directory below
    `repositories/`, repository or not yet."""
    found: dict[tuple[str, str], list[Entry]] = {}
    for name, repo in layout.index_entries(entries, include_all=True).items():
        with contextlib.suppress(NameInvalid):  # a name the layout cannot path
            check_name(name)
            for upload_id, files in repo.uploads.items():
                found[(name, upload_id)] = files
    return found


def recheck(
    layout: V2Layout, result: GcResult, before: dict[str, Entry], reader: ManifestReader
) -> None:
    """Walk `repositories/` again and drop from the plan whatever a change since the mark
    might need: in a repository that changed, every revision, tag and `_layers` link is
    kept (with what they reference), as are its changed uploads; a new `_layers` link
    anywhere keeps its blob. One more walk, plus GETs for manifests not yet read."""
    after = {e.path: e for e in layout.driver.walk(layout.repositories_dir())}
    changed = {
        p
        for p, e in after.items()
        if p not in before or (before[p].modified, before[p].size) != (e.modified, e.size)
    } | (before.keys() - after.keys())
    if not changed:
        return
    repos_changed = {found[0] for p in changed if (found := layout.split_repository_path(p))}
    now = {n: r for n, r in layout.index_entries(after.values()).items() if n in repos_changed}
    marks = mark(
        layout,
        now,
        reader,
        delete_untagged=True,
        young_revisions={},
        young_layers={},
        everything_in=now,
    )
    result.warnings += marks.warnings
    keep = marks.blobs | {
        d for d, e in layer_links(layout, (after[p] for p in changed if p in after))
    }
    kept = []
    for item in result.items:
        if item.kind in ("blob", "manifest"):
            drop = Digest.parse(item.name) in keep
        elif item.kind in _LINK_KINDS:
            drop = item.repository in repos_changed
        elif item.kind == "upload":
            drop = any(p in changed for p in item.paths)
        else:
            drop = False
        if drop:
            kept.append(item)
    result.items = [i for i in result.items if i not in kept]
    result.kept_changed += len(kept)


def delete_items(driver: Driver, result: GcResult) -> None:
    """Delete the plan kind by kind (links first, so the registry stops serving what goes
    next); a blob whose link could not be deleted is not deleted either."""
    links_left: set[str] = set()
    for kind in KINDS:
        items = [i for i in result.items if i.kind == kind]
        if kind in ("manifest", "blob"):
            for item in [i for i in items if i.name in links_left]:
                for path in item.paths:
                    result.failed[path] = "not attempted: a link to it could not be deleted"
                items.remove(item)
        if not items:
            continue
        # Large objects' manifests before their segments: no reader meets half an object.
        paths = [i.paths[0] for i in items] + [p for i in items for p in i.paths[1:]]
        report = driver.delete_many(paths)
        result.failed.update(report.failed)
        if kind in _LINK_KINDS:
            links_left |= {i.name for i in items if not result.done(i)}
