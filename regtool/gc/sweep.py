"""Sweep: re-check what changed since the mark began, then delete in a safe order."""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from datetime import datetime
from itertools import islice

from regtool.errors import NameInvalid, RegtoolError, StorageError, is_fault
from regtool.gc.aliases import links_of, reached, read_aliases
from regtool.gc.mark import mark
from regtool.gc.model import KINDS, Doomed, GcResult
from regtool.gc.references import ReferenceReader, blob_key
from regtool.gc.snapshot import (
    RepositoriesSnapshot,
    fingerprint,
    skipped_links,
    walk_repositories,
)
from regtool.gc.spill import Plan
from regtool.layout.segments import segment_set_of
from regtool.layout.v2 import RepositoryIndex, V2Layout
from regtool.layout.v2_write import write_link
from regtool.oci import Digest
from regtool.storage.base import Driver
from regtool.uploads.lease import LeaseTerms
from regtool.uploads.purge import purge_upload

_LINK_KINDS = ("revision-link", "layer-link")
#: Plan items deleted at once (Swift's bulk delete takes 10,000 names a request).
_DELETE_CHUNK = 10_000


def recheck(
    layout: V2Layout, result: GcResult, before: RepositoriesSnapshot, reader: ReferenceReader
) -> list[Doomed]:
    """Walk `repositories/` again and drop from the plan whatever a change since the mark
    might need: in a repository with a new or rewritten file, every revision, tag and
    `_layers` link is kept (with what they reference), as are its changed uploads; a new
    `_layers` link anywhere keeps its blob. One more walk, one more per changed repository,
    plus GETs for manifests not yet read. (A file deleted meanwhile, gc's own deletions
    included, can only make less reachable, so it needs no keeping.) Returns the items
    dropped."""
    assert before.fingerprints is not None, "a snapshot taken for a dry run"
    seen = before.fingerprints
    changed = [e for e in walk_repositories(layout) if fingerprint(e) not in seen]
    if not changed:
        return []
    changed_paths = {e.path for e in changed}
    repos_changed = {found[0] for e in changed if (found := layout.split_repository_path(e.path))}
    now: dict[str, RepositoryIndex] = {}
    for name in repos_changed:
        with contextlib.suppress(NameInvalid):  # a name the layout cannot path
            now.update(layout.scan_repositories(name))
    # Links of the plan in those repositories stay (on the second pass gc has deleted them
    # already, and will write them back): mark as if they had never gone.
    for item in result.items:
        if item.kind in _LINK_KINDS and item.repository in now:
            repo = now[item.repository]
            links = repo.revisions if item.kind == "revision-link" else repo.layers
            links.add(Digest.parse(item.name))
    aliases, _ = read_aliases(layout, links_of(now), reader.jobs)  # all kept: no warning
    marks = mark(
        layout,
        now,
        reader,
        delete_untagged=True,
        young_revisions={},
        young_layers={},
        aliases=aliases,
        everything_in=now,
    )
    result.warnings += [w for w in marks.warnings if w not in result.warnings]  # 2nd pass
    # Blobs a new `_layers` link names (or, an alias, reaches), or a link this re-check
    # keeps.
    scanned = layout.index_entries(changed, include_all=True)
    new_links = links_of(scanned)
    new_aliases, _ = read_aliases(layout, new_links, reader.jobs)
    linked = set(map(blob_key, skipped_links(scanned.skipped)))
    for name, digests in new_links.items():
        keys = set(map(blob_key, digests))
        linked |= keys | reached(new_aliases.get(name, {}), keys)
    linked |= {
        blob_key(Digest.parse(i.content))
        for i in result.items
        if i.kind in _LINK_KINDS and i.repository in repos_changed
    }
    kept: list[Doomed] = []
    still = Plan(threshold=result.options.in_memory)  # streamed: the plan may be millions
    for item in result.items:
        if item.kind in ("blob", "manifest"):
            key = blob_key(Digest.parse(item.name))
            drop = key in marks.blobs or key in linked
        elif item.kind in _LINK_KINDS:
            drop = item.repository in repos_changed
        elif item.kind in ("upload", "temp-file"):  # written again: still in use
            drop = any(p in changed_paths for p in item.paths)
        else:
            drop = False
        if drop:
            kept.append(item)
        else:
            still.append(item)
    result.items.close()
    result.items = still
    result.kept_changed += len(kept)
    _spare_segments(layout, result, kept)
    return kept


def _spare_segments(layout: V2Layout, result: GcResult, kept: list[Doomed]) -> None:
    """Take out of the plan the segments of the large objects in `kept` (which stay,
    after all): another doomed object may name the same set (gc/large_objects.py). That
    one goes without its segments."""
    segments_dir = layout.segments_dir()
    if segments_dir is None:
        return
    staying = {p for i in kept for p in i.paths if segment_set_of(segments_dir, p)}
    if not staying:
        return
    still = Plan(threshold=result.options.in_memory)
    for item in result.items:
        if any(p in staying for p in item.paths):
            paths = tuple(p for p in item.paths if p not in staying)
            why = "its segments stay (a large object kept after all reads them)"
            item = replace(item, paths=paths, size=None, reason=f"{item.reason}; {why}")
            if item.kind == "upload":
                assert item.repository is not None  # every upload item names its repository
                result.keep_segments.add(layout.upload_data(item.repository, item.name))
        still.append(item)
    result.items.close()
    result.items = still


def sweep(
    layout: V2Layout,
    result: GcResult,
    before: RepositoriesSnapshot,
    reader: ReferenceReader,
    settle: float,
    uploads_limit: datetime,
    lease_terms: LeaseTerms | None = None,
) -> None:
    """Re-check, delete the links, let in-flight manifest uploads land, re-check again,
    then delete content; each upload under its lease, if none of its files was written
    after `uploads_limit` (`purge_uploads`).

    A registry accepts a manifest only if the repository links each blob it references,
    and writes the manifest's own links a moment after that check. Every link to a doomed
    blob goes first, so a manifest checked afterwards is refused (the push fails, visibly).
    One checked before has written its links after `settle` seconds: the second re-check
    sees its repository changed, writes back the links gc deleted there and keeps what
    they name. No push ends as a broken image unless its upload outlasts `settle`.

    A storage fault in the first re-check is raised (nothing is deleted yet). One in the
    second, after the links went, stops the sweep: nothing more is deleted, the fault is
    kept in `result.fault` and the content items are failed as not attempted."""
    recheck(layout, result, before, reader)
    delete_items(layout.driver, result, _LINK_KINDS)
    if any(i.kind in _LINK_KINDS for i in result.items):
        time.sleep(settle)
    try:
        changed = recheck(layout, result, before, reader)
    except (RegtoolError, OSError) as e:
        if not is_fault(e):
            raise
        result.fault = f"the re-check after deleting links failed: {e}"
        for item in result.items:
            if item.kind not in _LINK_KINDS:
                for path in item.paths:
                    result.failed[path] = "not attempted: gc stopped at a storage fault"
        return
    _restore_links(layout, result, [i for i in changed if i.kind in _LINK_KINDS])
    content = tuple(k for k in KINDS if k not in _LINK_KINDS)
    uploads = content.index("upload")
    delete_items(layout.driver, result, content[:uploads])
    purge_uploads(layout, result, uploads_limit, lease_terms or LeaseTerms())
    delete_items(layout.driver, result, content[uploads + 1 :])


def purge_uploads(
    layout: V2Layout, result: GcResult, limit: datetime, lease_terms: LeaseTerms
) -> None:
    """Delete the plan's uploads one by one, each under its lease as the server's
    purging does (`uploads.purge`): an upload a server is writing (its lease in force),
    or one written after `limit` (UTC) since it was planned, is kept, named in a warning,
    and leaves the plan counted with what changed during gc. A storage fault fails that
    upload's paths."""
    kept: set[str] = set()
    for item in result.items:
        if item.kind != "upload":
            continue
        assert item.repository is not None  # every upload item names its repository
        try:
            alone = [p for p in item.paths if p in result.keep_segments]
            name = item.repository
            if not purge_upload(layout, name, item.name, limit, lease_terms, alone):
                kept.add(item.name)
                result.warnings.append(
                    f"upload {item.name} of {item.repository}: kept, a server took its lease"
                    " or wrote to it since gc planned"
                )
        except (RegtoolError, OSError) as e:
            for path in item.paths:
                result.failed[path] = str(e)
    if not kept:
        return
    still = Plan(threshold=result.options.in_memory)
    still.extend(i for i in result.items if not (i.kind == "upload" and i.name in kept))
    result.items.close()
    result.items = still
    result.kept_changed += len(kept)


def _restore_links(layout: V2Layout, result: GcResult, items: list[Doomed]) -> None:
    """Write back links gc deleted (each path of a link item held `Doomed.content`)."""
    for item in items:
        digest = Digest.parse(item.content)
        for path in item.paths:
            if path in result.failed:  # never deleted
                del result.failed[path]
                continue
            try:
                write_link(layout, path, digest)
            except StorageError as e:  # reported, not raised: the rest must still run
                result.failed[path] = f"deleted, and could not be restored: {e}"
    if items:
        links = "link" if len(items) == 1 else "links"
        result.warnings.append(
            f"{len(items)} deleted {links} restored: their repositories changed during gc"
        )


def delete_items(driver: Driver, result: GcResult, kinds: tuple[str, ...] = KINDS) -> None:
    """Delete the plan's items of `kinds`, kind by kind in `KINDS` order (links first, so
    the registry stops serving what goes next), `_DELETE_CHUNK` items a request batch, read
    from the plan as they go; a blob whose link could not be deleted is not deleted
    either. Uploads are not among them: they go under their leases (`purge_uploads`)."""
    links_left: set[str] | None = None
    for kind in (k for k in KINDS if k in kinds and k != "upload"):
        if kind in ("manifest", "blob") and links_left is None:
            # a link fails seldom: its set is small, whatever the size of the plan
            links_left = {
                i.content for i in result.items if i.kind in _LINK_KINDS and not result.done(i)
            }
        items = (i for i in result.items if i.kind == kind)
        while chunk := list(islice(items, _DELETE_CHUNK)):
            if kind in ("manifest", "blob") and links_left:
                for item in [i for i in chunk if i.name in links_left]:
                    for path in item.paths:
                        result.failed[path] = "not attempted: a link to it could not be deleted"
                    chunk.remove(item)
            # Large objects' manifests before their segments: no reader meets half an object.
            paths = [i.paths[0] for i in chunk] + [p for i in chunk for p in i.paths[1:]]
            if paths:
                result.failed.update(driver.delete_many(paths).failed)
