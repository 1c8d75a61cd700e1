"""Garbage collection of a V2 (distribution) store: one walk of `repositories/`, one GET
per distinct manifest (and per tag link the listing cannot tell), one walk of `blobs/`
and, on Swift, one of `segments/`; a HEAD of each large object's manifest that the facts
cache does not hold, for those kept only when some large object is to be deleted (or with
`orphan_segments`): `gc/large_objects.py`.

Memory is bounded: `repositories/` is marked a batch of directories at a time, and every
working set that grows with the store is a `KeySet`, `KeyMap`, `Groups` or `Plan`, which
spill to disk past `GcOptions.in_memory` entries."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from itertools import chain, islice
from typing import TypeVar

from regtool.concurrency import map_outcomes, raise_unless_missing
from regtool.facts import ManifestFacts
from regtool.gc.ahead import Ahead
from regtool.gc.aliases import Aliases, links_of, reached, read_aliases
from regtool.gc.blobs import BlobListing
from regtool.gc.large_objects import Sizer
from regtool.gc.mark import Marks, mark
from regtool.gc.model import Doomed, GcOptions, GcResult
from regtool.gc.references import ReferenceReader, blob_key
from regtool.gc.snapshot import (
    SKIPPED,
    RepositoriesSnapshot,
    skipped_links,
    take_snapshot,
    uploads_of,
    young,
)
from regtool.gc.spill import KeySet, Plan
from regtool.gc.sweep import sweep
from regtool.layout.blobs import walk_blobs
from regtool.layout.segments import SegmentSet, segment_set_of, segment_sets
from regtool.layout.v2 import LinkKind, LinkStat, Repositories, RepositoryIndex, V2Layout
from regtool.oci import Digest
from regtool.segment_names import PREFETCH, SegmentNames, named_segment
from regtool.storage.base import Entry, set_aside_temporaries
from regtool.text import plural
from regtool.uploads.age import OldUpload, old_uploads
from regtool.uploads.lease import LeaseTerms, in_force

T = TypeVar("T")


@contextmanager
def phase(result: GcResult, name: str) -> Iterator[None]:
    t0 = time.monotonic()
    try:
        yield
    finally:
        result.phases[name] = result.phases.get(name, 0.0) + time.monotonic() - t0


@dataclass
class _Marked:
    """What the mark of every batch of directories leaves for the plan: large sets are
    `KeySet`s and `Plan`s (spilled to disk past the threshold), the rest is small."""

    blobs: KeySet  # every blob and manifest kept
    revisions: KeySet  # the blob keys of every repository's revisions: manifests
    links: Plan  # revision and `_layers` links to delete in repositories, by name
    outside: Plan  # `_layers` links in directories without manifests
    uploads: dict[tuple[str, str], list[Entry]] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)  # directories of invalid names
    # warnings, in the order given: skipped directories, damaged aliases, the mark's,
    # wrong links kept
    warnings: tuple[list[str], ...] = field(default_factory=lambda: ([], [], [], []))

    def close(self) -> None:
        for spilled in (self.blobs, self.revisions, self.links, self.outside):
            spilled.close()


def _mark_all(
    layout: V2Layout, snapshot: RepositoriesSnapshot, reader: ReferenceReader, options: GcOptions
) -> _Marked:
    """Mark what every directory below `repositories/` keeps, a batch of directories at a
    time (`RepositoriesSnapshot.batches`), and plan the links it does not."""
    threshold = options.in_memory
    marked = _Marked(
        KeySet(threshold=threshold),
        KeySet(threshold=threshold),
        Plan(threshold=threshold),
        Plan(threshold=threshold),
    )
    skipped, damaged_warnings, mark_warnings, bad_links = marked.warnings
    for batch in snapshot.batches(layout, threshold):
        skipped += batch.skipped_warnings(SKIPPED)
        marked.skipped.update(batch.skipped)
        repos = {n: r for n, r in batch.items() if r.has_manifests}
        young_layers = snapshot.young_layers(layout, batch)
        aliases, damaged = read_aliases(layout, links_of(batch), options.jobs)
        damaged = {n: warning for n, warning in damaged.items() if n in repos}
        damaged_warnings += damaged.values()
        marks = mark(
            layout,
            repos,
            reader,
            delete_untagged=options.delete_untagged,
            young_revisions=snapshot.young_revisions(layout, batch),
            young_layers={n: d for n, d in young_layers.items() if n in repos},
            aliases=aliases,
            everything_in=damaged,
            blobs=marked.blobs,
        )
        # A link written into a repository without manifests yet (a first push, a
        # mount) makes its blob as wanted as any other young link.
        for name, layers in young_layers.items():
            keys = set(map(blob_key, layers))
            marked.blobs |= keys | reached(aliases.get(name, {}), keys)
        marked.blobs |= map(blob_key, skipped_links(batch.skipped))
        for repo in repos.values():
            marked.revisions |= map(blob_key, repo.revisions)
        mark_warnings += marks.warnings
        bad_links += _bad_links_kept(repos, marks, options.delete_untagged)
        marked.links += _link_items(layout, repos, marks, options)
        marked.outside += _links_outside_repositories(layout, batch, snapshot.young_paths, aliases)
        marked.uploads.update(uploads_of(batch))
    return marked


def collect_v2(
    layout: V2Layout,
    location: str,
    options: GcOptions,
    now: datetime | None = None,
    facts: ManifestFacts | None = None,
) -> GcResult:
    result = GcResult(location, "v2", options)
    started = now or datetime.now(UTC)
    cutoff = started - options.min_age
    driver = layout.driver
    with ExitStack() as scratch:  # what spilled to disk goes when gc is done with it
        # The walks of blobs/ (when the facts need it before the mark) and segments/ begin
        # now, beside the walk of repositories/: each listing waits on the storage.
        reader = ReferenceReader(layout, options.jobs, facts, options.in_memory)
        scratch.callback(reader.references.close)
        blob_temporaries: list[Entry] = []
        names = SegmentNames(driver, reader.facts, options.jobs)
        scratch.callback(names.close)
        listing_ahead = None
        if reader.facts is not None and driver.listed_checksums:
            # One walk of blobs/ serves the facts' validity (listed MD5s) and the plan.
            listing_ahead = Ahead(
                partial(_blob_listing, layout, blob_temporaries, options.in_memory, names),
                driver.walk(layout.blobs_dir(), temporaries=True),
                "blobs",
            )
            scratch.callback(_closing(listing_ahead, BlobListing.close))
        segments_dir = layout.segments_dir()
        sets_ahead = None
        if segments_dir is not None:
            sets_ahead = Ahead(
                partial(segment_sets, segments_dir), driver.walk(segments_dir), "segments"
            )
            scratch.callback(sets_ahead.stop)
        with phase(result, "repositories"):
            snapshot = take_snapshot(
                layout, cutoff, recheck=not options.dry_run, threshold=options.in_memory
            )
            scratch.callback(snapshot.close)
        temporaries = list(snapshot.temporaries)  # and those in blobs/, from its walk
        listing = None
        if listing_ahead is not None:
            with phase(result, "blobs"):
                listing = listing_ahead.result()
                temporaries += blob_temporaries
            reader.entries.use_listing(listing.entry)
        with phase(result, "mark"):
            marked = _mark_all(layout, snapshot, reader, options)
            scratch.callback(marked.close)
            snapshot.directories.close()  # indexed: what the sweep needs is kept apart
        for warnings in marked.warnings:
            result.warnings += warnings
        result.marked_blobs = len(marked.blobs)
        result.manifests_read = len(reader.cache)
        # nothing in a skipped directory is gc's to delete, its temp files neither
        skipped = tuple(f"{layout.repositories_dir()}/{name}/" for name in marked.skipped)
        temporaries = [e for e in temporaries if not e.path.startswith(skipped)]
        with phase(result, "blobs"):
            # Marked blobs are passed over, unmarked ones become plan items at once; only
            # large objects wait, to be sized by a HEAD. Memory follows the garbage.
            blob_items = Plan(threshold=options.in_memory)
            scratch.callback(blob_items.close)
            unsized: list[tuple[Digest, Entry]] = []
            kept_large = BlobListing(layout, options.in_memory)  # whose sets must stay
            scratch.callback(kept_large.close)
            if listing is None:
                blob_walk = driver.walk(layout.blobs_dir(), temporaries=True)
                blobs = walk_blobs(layout, set_aside_temporaries(blob_walk, temporaries))
            else:
                blobs = iter(listing)
            for digest, entry in blobs:
                is_large = driver.has_large_objects and not entry.size
                if blob_key(digest) in marked.blobs:
                    if is_large:
                        kept_large.add(digest, entry)
                    continue
                if young(entry, cutoff):
                    result.kept_young += 1
                    if is_large:
                        kept_large.add(digest, entry)
                elif is_large:
                    unsized.append((digest, entry))
                else:
                    item = _blob_item(digest, (entry.path,), entry.size, marked.revisions)
                    blob_items.append(item)
        sets: dict[str, SegmentSet] = {}
        if sets_ahead is not None:
            with phase(result, "segments"):
                sets = sets_ahead.result()
        with phase(result, "plan"):
            sizer = Sizer(layout, sets, names)
            # Uploads of every directory, also of a first push abandoned before any manifest.
            all_uploads = marked.uploads
            uploads = _doomed_uploads(layout, all_uploads, started, options, result)
            doomed_data = _upload_data(layout, uploads, sizer)
            sizer.head_all([e for _, e in unsized] + doomed_data)
            # A doomed object's segments go only if no large object that stays names them.
            every_set = options.orphan_segments and bool(sets) and segments_dir is not None
            named = sizer.keep_shared(
                chain(
                    (e for _, e in kept_large),
                    _kept_upload_data(layout, all_uploads, uploads, sizer),
                ),
                every_set,
            )
            blob_items += _large_blob_items(unsized, sizer, marked.revisions, result)
            result.items.extend_sorted(blob_items)
            result.items += marked.links
            result.items += marked.outside
            result.items += _upload_items(layout, uploads, sizer, result)
            result.items += _temp_file_items(layout, temporaries, cutoff, result)
            if every_set:
                assert segments_dir is not None
                result.items += _orphan_sets(segments_dir, named, sizer, result, cutoff)
        marked.close()
        if not options.dry_run:
            with phase(result, "sweep"):
                settle = options.settle.total_seconds()
                sweep(layout, result, snapshot, reader, settle, _uploads_limit(started, options))
    return result


def _blob_listing(
    layout: V2Layout,
    temporaries: list[Entry],
    threshold: int,
    names: SegmentNames,
    walk: Iterable[Entry],
) -> BlobListing:
    """The listing of `blobs/` (`BlobListing.of`); then the segment sets of its large
    objects are looked for beside the mark (`SegmentNames.prefetch`): the plan needs those
    of the doomed ones and, when any is doomed, those of the kept ones."""
    listing = BlobListing.of(layout, temporaries, threshold, walk)
    if layout.driver.has_large_objects:
        large = (e for _, e in listing if not e.size)
        names.prefetch(list(islice(large, PREFETCH)))
    return listing


def _closing(ahead: Ahead[T], close: Callable[[T], None]) -> Callable[[], None]:
    """Stops `ahead` and closes what it made, if it made it."""

    def stop() -> None:
        ahead.stop()
        with contextlib.suppress(Exception):  # what failed the walk: raised elsewhere
            close(ahead.result())

    return stop


def _blob_item(
    digest: Digest, paths: tuple[str, ...], size: int | None, revisions: KeySet
) -> Doomed:
    if blob_key(digest) in revisions:
        kind, reason = "manifest", "manifest no tag reaches (untagged)"
    else:
        kind, reason = "blob", "referenced by no kept manifest"
    return Doomed(kind=kind, name=str(digest), paths=paths, size=size, reason=reason)


def _large_blob_items(
    unsized: list[tuple[Digest, Entry]],
    sizer: Sizer,
    revisions: KeySet,
    result: GcResult,
) -> list[Doomed]:
    """Unmarked blobs stored as large objects (`Sizer.head_all` read them), sized by their
    segments; one whose set a kept object names too goes without its segments."""
    items = []
    for digest, entry in unsized:
        resolved = sizer.resolve(entry)
        if isinstance(resolved, str):
            result.warnings.append(f"blob {digest} kept: {resolved}")
            continue
        paths, size = resolved
        item = _blob_item(digest, paths, size, revisions)
        if (sharer := sizer.shared_with(entry)) is not None:
            item = _without_segments(item, sharer, result)
        items.append(item)
    return items


def _without_segments(item: Doomed, sharer: str, result: GcResult) -> Doomed:
    """`item`, whose large object's segments stay because `sharer` reads them too (named
    in a warning; the reason stays short, for the table)."""
    result.warnings.append(f"{item.kind} {item.name}: its segments stay, {sharer} reads them too")
    return replace(item, reason=f"{item.reason}; its segments stay (another object reads them)")


def _link_items(
    layout: V2Layout, repos: dict[str, RepositoryIndex], marks: Marks, options: GcOptions
) -> list[Doomed]:
    items = []
    for name, repo in sorted(repos.items()):
        if name in marks.unsure:
            continue
        if options.delete_untagged:
            for digest in sorted(repo.revisions - marks.manifests[name]):
                paths = [layout.revision_link(name, digest)]
                paths += [
                    layout.tag_index_link(name, tag, digest)
                    for tag, history in sorted(repo.tag_history.items())
                    if digest in history
                ]
                items.append(
                    Doomed(
                        "revision-link",
                        str(digest),
                        tuple(paths),
                        None,
                        "untagged manifest: no tag, index or subject reaches it",
                        name,
                    )
                )
        why = "no kept manifest of the repository references the blob"
        items += [
            _layer_link_item(layout, name, digest, why, marks.aliases)
            for digest in sorted(marks.stale_layers[name])
        ]
    return items


def _layer_link_item(
    layout: V2Layout, name: str, digest: Digest, reason: str, aliases: Aliases
) -> Doomed:
    target = aliases.get(name, {}).get(digest)
    return Doomed(
        "layer-link",
        str(digest),
        (layout.layer_link(name, digest),),
        None,
        reason,
        name,
        links_to=str(target) if target else None,
    )


def _links_outside_repositories(
    layout: V2Layout, directories: Repositories, young_paths: set[str], aliases: Aliases
) -> list[Doomed]:
    """`_layers` links older than --min-age in directories without manifests (a first push
    abandoned before its manifest, or one that is still to land it: gc deletes every link
    to a blob before the blob, so that manifest is refused rather than left broken)."""
    items = []
    for name, directory in sorted(directories.items()):
        if directory.has_manifests:
            continue
        for digest in sorted(directory.layers):
            why = "directory without manifests: nothing references the blob"
            item = _layer_link_item(layout, name, digest, why, aliases)
            if item.paths[0] not in young_paths:
                items.append(item)
    return items


def _uploads_limit(now: datetime, options: GcOptions) -> datetime:
    """Uploads untouched since this time (UTC) are old enough to delete."""
    return now - max(options.uploads_older_than, options.min_age)


def _not_leased(
    layout: V2Layout, uploads: list[OldUpload], jobs: int, result: GcResult
) -> list[OldUpload]:
    """Of `uploads`, those no server is writing. One whose lease is in force stays, as
    the sweep's purging would keep it (`uploads.purge`), so that a dry run shows what a
    real run does; each is named in a warning. Only an upload whose listing shows a lease
    file costs a read."""
    terms = LeaseTerms()
    listed = [
        (u.repository, u.upload_id)
        for u in uploads
        if any(f.path == layout.upload_lease(u.repository, u.upload_id) for f in u.files)
    ]

    def leased(key: tuple[str, str]) -> bool:
        return in_force(layout.driver, partial(layout.upload_lease, *key), terms)

    held = map_outcomes(leased, listed, jobs)
    raise_unless_missing(held.values())
    kept = {key for key, outcome in held.items() if outcome is True}
    for name, upload_id in sorted(kept):
        result.warnings.append(
            f"upload {upload_id} of {name}: kept, a server is writing it (its lease is in force)"
        )
    return [u for u in uploads if (u.repository, u.upload_id) not in kept]


def _doomed_uploads(
    layout: V2Layout,
    all_uploads: dict[tuple[str, str], list[Entry]],
    now: datetime,
    options: GcOptions,
    result: GcResult,
) -> list[OldUpload]:
    """The uploads the plan deletes: old enough, and no server writing them. Those old
    enough for `--uploads-older-than` but not for `--min-age` count as kept young."""
    limit = _uploads_limit(now, options)
    old = old_uploads(layout, all_uploads, now - options.uploads_older_than, options.jobs)
    result.kept_young += sum(1 for u in old if u.last > limit)
    old = [u for u in old if u.last <= limit]
    return _not_leased(layout, old, options.jobs, result)


def _upload_data(layout: V2Layout, uploads: list[OldUpload], sizer: Sizer) -> list[Entry]:
    """The entries of the `data` files of `uploads` that may be large objects."""
    return [
        f
        for u in uploads
        for f in u.files
        if f.path == layout.upload_data(u.repository, u.upload_id) and sizer.needs_head(f)
    ]


def _kept_upload_data(
    layout: V2Layout,
    all_uploads: dict[tuple[str, str], list[Entry]],
    doomed: list[OldUpload],
    sizer: Sizer,
) -> list[Entry]:
    """The entries of the `data` files of the uploads that stay (all but `doomed`) that
    may be large objects."""
    going = {(u.repository, u.upload_id) for u in doomed}
    return [
        f
        for (name, upload_id), files in all_uploads.items()
        if (name, upload_id) not in going
        for f in files
        if f.path == layout.upload_data(name, upload_id) and sizer.needs_head(f)
    ]


def _upload_items(
    layout: V2Layout, doomed: list[OldUpload], sizer: Sizer, result: GcResult
) -> list[Doomed]:
    """The plan's items for the uploads `doomed` (their data read by `Sizer.head_all`).
    Data whose segments a kept object names too is noted in `GcResult.keep_segments`:
    the sweep deletes it without them."""
    items = []
    for upload in doomed:
        name, upload_id, files = upload.repository, upload.upload_id, upload.files
        began, last = upload.began, upload.last
        paths: list[str] = []
        size = 0
        sharer = None
        for f in files:
            if f.path == layout.upload_data(name, upload_id):
                resolved = sizer.resolve(f)
                if (sharer := sizer.shared_with(f)) is not None:
                    result.keep_segments.add(f.path)
            else:
                resolved = (f.path,), f.size
            if isinstance(resolved, str):
                resolved = (f.path,), None
                result.warnings.append(f"upload {upload_id}: segments not found ({f.path})")
            paths += resolved[0]
            size += resolved[1] or 0
        why = f"started {began:%Y-%m-%dT%H:%M:%SZ}, " if began else "no startedat, "
        item = Doomed(
            "upload",
            upload_id,
            tuple(paths),
            size,
            why + f"last written {last:%Y-%m-%dT%H:%M:%SZ}",
            name,
        )
        items.append(item if sharer is None else _without_segments(item, sharer, result))
    return items


def _temp_file_items(
    layout: V2Layout, temporaries: list[Entry], cutoff: datetime, result: GcResult
) -> list[Doomed]:
    """Writers' temp files older than `cutoff`: what a crash (or a cleanup that failed on
    a full disk or a dead connection) left. One inside an upload is the upload's file, and
    goes with it by the upload's age rules; a younger one may be a write in progress."""
    items = []
    for entry in sorted(temporaries, key=lambda e: e.path):
        where = layout.parse_repository_path(entry.path)
        if where is not None and where.kind == "upload":
            continue
        if young(entry, cutoff):
            result.kept_young += 1
            continue
        assert entry.modified is not None  # young() keeps a file of unknown age
        why = f"a writer's temp file, last written {entry.modified:%Y-%m-%dT%H:%M:%SZ}"
        split = layout.split_repository_path(entry.path)
        repository = split[0] if split is not None else None
        items.append(Doomed("temp-file", entry.path, (entry.path,), entry.size, why, repository))
    return items


def _orphan_sets(
    segments_dir: str, named: set[str], sizer: Sizer, result: GcResult, cutoff: datetime
) -> list[Doomed]:
    """Segment sets none of whose segments a large object names (`named`: the prefix
    every kept or doomed object in blobs/ and _uploads/ names, `Sizer.keep_shared`),
    older than `cutoff`."""
    # segments of what the plan deletes already (a deleted large object's own set)
    claimed = {
        owner
        for i in result.items
        for p in i.paths[1:]
        if (owner := segment_set_of(segments_dir, p)) is not None
    }
    items = []
    for path, found in sorted(sizer.sets.items()):
        if path in claimed or any(
            named_segment(named, e.path, segments_dir) for e in found.segments
        ):
            continue
        newest = found.newest
        if newest is None or newest > cutoff:
            result.kept_young += 1
            continue
        items.append(
            Doomed(
                "segments",
                path,
                tuple(e.path for e in found.segments),
                found.size,
                "segment set that no large object names",
            )
        )
    return items


def _bad_links_kept(
    repos: dict[str, RepositoryIndex], marks: Marks, delete_untagged: bool
) -> list[str]:
    """Warnings for links the listing shows do not name their blob (empty, truncated, or
    on Swift any other content) and that gc keeps, because what they link is wanted:
    distribution cannot serve that blob in that repository (an empty link: HTTP 500). gc
    neither deletes nor rewrites them; `regtool verify` reports each, and a link of the
    right length that names another digest too (gc reads no links). A wrong link that gc
    would delete anyway (its blob unwanted) simply goes."""
    warnings = []
    for name in sorted(repos):
        repo = repos[name]
        for (kind, digest), stat in sorted(repo.bad_links.items()):
            if kind == "layer":
                kept = digest not in marks.stale_layers.get(name, ())
            else:
                kept = (
                    not delete_untagged
                    or name in marks.unsure
                    or digest in marks.manifests.get(name, ())
                )
            if kept:
                warnings.append(
                    f"{name}: the {_LINK_NAMES[kind]} link of {digest} {_listed_state(stat)}: "
                    "the registry cannot serve it there; kept (see regtool verify)"
                )
    return warnings


_LINK_NAMES: dict[LinkKind, str] = {"layer": "_layers", "revision": "revision"}
_EMPTY_CHECKSUM = "d41d8cd98f00b204e9800998ecf8427e"  # MD5 of nothing


def _listed_state(stat: LinkStat) -> str:
    if stat.size == 0 or stat.checksum == _EMPTY_CHECKSUM:
        return "is empty"
    if stat.size is not None:
        return f"holds {plural(stat.size, 'byte')}, not the digest"
    return "holds another digest or none"
