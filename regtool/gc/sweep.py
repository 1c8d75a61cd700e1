"""Sweep: re-check what changed since the mark began, then delete in a safe order."""

from __future__ import annotations

import contextlib

from regtool.errors import NameInvalid
from regtool.gc.mark import mark
from regtool.gc.model import KINDS, GcResult
from regtool.gc.references import ReferenceReader, blob_key
from regtool.gc.snapshot import RepositoriesSnapshot, fingerprint
from regtool.layout.v2 import RepositoryIndex, V2Layout
from regtool.oci import Digest
from regtool.storage.base import Driver

_LINK_KINDS = ("revision-link", "layer-link")


def recheck(
    layout: V2Layout, result: GcResult, before: RepositoriesSnapshot, reader: ReferenceReader
) -> None:
    """Walk `repositories/` again and drop from the plan whatever a change since the mark
    might need: in a repository with a new or rewritten file, every revision, tag and
    `_layers` link is kept (with what they reference), as are its changed uploads; a new
    `_layers` link anywhere keeps its blob. One more walk, one more per changed repository,
    plus GETs for manifests not yet read. (A file deleted meanwhile can only make less
    reachable, so it needs no keeping.)"""
    changed = [
        e
        for e in layout.driver.walk(layout.repositories_dir())
        if fingerprint(e) not in before.fingerprints
    ]
    if not changed:
        return
    changed_paths = {e.path for e in changed}
    repos_changed = {found[0] for e in changed if (found := layout.split_repository_path(e.path))}
    now: dict[str, RepositoryIndex] = {}
    for name in repos_changed:
        with contextlib.suppress(NameInvalid):  # a name the layout cannot path
            now.update(layout.scan_repositories(name))
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
    new_links = layout.index_entries(changed, include_all=True)
    linked = {blob_key(d) for r in new_links.values() for d in r.layers}
    kept, still = [], []
    for item in result.items:
        if item.kind in ("blob", "manifest"):
            key = blob_key(Digest.parse(item.name))
            drop = key in marks.blobs or key in linked
        elif item.kind in _LINK_KINDS:
            drop = item.repository in repos_changed
        elif item.kind == "upload":
            drop = any(p in changed_paths for p in item.paths)
        else:
            drop = False
        (kept if drop else still).append(item)
    result.items = still
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
