"""What the UI's pages show, read through the same tools as the CLI: `inspect.listing`
(what `regtool ls` prints), the server's `Registry` (manifests, referrers) and `gc`'s plan
(what `regtool gc --dry-run` reports). Blocking: call from a worker thread.

The catalog reads in detail only the repositories on the page it shows: one walk of
`repositories/` (kept, and renewed in the background every `LISTING_TTL` seconds) gives
every name with its tag count and last push; sizes come from `list_registry` of the
repositories on the page alone. Until the first walk has ended, a listing of directories
alone names the repositories, and those on the page are walked each on its own.

After each walk, the whole store is listed in the background (manifests through the
facts cache) into an index (`StoreIndex`): which images hold each layer, for the image
page, and each repository's bytes, for the storage page.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from regtool.concurrency import map_outcomes
from regtool.errors import (
    ManifestInvalid,
    NotFound,
    RegtoolError,
    StorageError,
    is_fault,
    raise_faults,
)
from regtool.facts import ManifestFacts, open_cache
from regtool.gc import GcOptions, collect
from regtool.inspect.listing import Listing, RepositoryInfo, list_registry
from regtool.layout.detect import Layout
from regtool.layout.manifests import ManifestReader, store_identity
from regtool.layout.v1 import V1Layout, canonical_name, check_image_id, client_name
from regtool.layout.v2 import Repositories, V2Layout
from regtool.oci import Descriptor, Digest, Manifest, check_tag, load_json
from regtool.server.registry import Registry
from regtool.storage.base import Driver
from regtool.storage.rooted import RootKept
from regtool.ui.names import NameStream, catalog_order
from regtool.ui.sharing import SHOWN, Holder, LayerIndex, index_v1, index_v2

log = logging.getLogger(__name__)

#: Seconds after which the kept walk of `repositories/` is renewed (in the background).
LISTING_TTL = 10.0
#: ... or this many times what the last walk took, if longer: a store whose walk takes
#: seconds is not walked all the time (each walk slows the pages answered beside it).
RENEW_AFTER = 9
#: Repositories per catalog page.
PAGE_SIZE = 50
#: Largest image config read for the image page (distribution's manifest limit).
MAX_CONFIG_SIZE = 4 << 20
#: Requests in flight for one page.
JOBS = 8
#: Parsed manifests a UI keeps between requests (about a kilobyte each).
MANIFESTS_KEPT = 200_000


@dataclass(frozen=True)
class Walk:
    """One walk of `repositories/`: its indexes (V2) and each repository's (tag count,
    last push), by the name clients use (V1: without `library/`)."""

    repositories: Repositories
    summaries: dict[str, tuple[int, datetime | None]]


@dataclass(frozen=True)
class CatalogRow:
    name: str
    tags: int
    pushed: datetime | None
    size: int | None = None  # bytes of its distinct blobs; None when unread


@dataclass
class CatalogPage:
    rows: list[CatalogRow]
    matching: int  # repositories the filter and the viewer's rights let through
    page: int  # from 1
    pages: int
    warnings: list[str] = field(default_factory=list)
    #: False while the store's names are still being listed: `matching` and `pages`
    #: count those found so far.
    complete: bool = True


@dataclass(frozen=True)
class Layer:
    digest: str
    media_type: str
    size: int | None
    shared_with: tuple[Holder, ...]  # other images holding this blob (those shown)
    more: int = 0  # and how many more, not shown


@dataclass(frozen=True)
class Child:
    digest: str
    media_type: str
    platform: str
    size: int | None


@dataclass(frozen=True)
class Referrer:
    digest: str
    artifact_type: str
    media_type: str
    annotations: dict[str, str]


@dataclass
class ImageDetails:
    """One manifest (V2) or image (V1) of a repository, with what its config says."""

    name: str
    reference: str  # digest or V1 image id
    media_type: str
    kind: str
    tags: list[str] = field(default_factory=list)  # the repository's tags naming it
    size: int | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # the image config's `config`
    platform: str | None = None
    created: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    subject: str | None = None
    referrers: list[Referrer] = field(default_factory=list)
    artifact_type: str | None = None
    #: Why "also in" may miss images: the store is still being read, or is indexed in part.
    sharing_note: str | None = None


@dataclass(frozen=True)
class RepositoryTotals:
    name: str
    own: int  # bytes of blobs no other repository's tags reference
    shared: int  # bytes of blobs other repositories reference too


@dataclass(frozen=True)
class Holdings:
    """The blobs each repository's tags reference (by the name clients use), and each
    blob's size: what the split of bytes into "only here" and "shared" is made from."""

    blobs: dict[str, frozenset[str]]  # repository -> digests (V1: image ids)
    sizes: dict[str, int]  # digest -> bytes

    def totals(self, visible: Callable[[str], bool]) -> list[RepositoryTotals]:
        """Each repository `visible` lets through, with the bytes of its blobs that no
        other such repository references (`own`) and of those that one does (`shared`):
        a repository the viewer may not see does not make another's bytes "shared", which
        would tell that it holds them."""
        shown = [(name, blobs) for name, blobs in self.blobs.items() if visible(name)]
        holders: dict[str, int] = {}
        for _, blobs in shown:
            for blob in blobs:
                holders[blob] = holders.get(blob, 0) + 1
        sizes = self.sizes
        return [
            RepositoryTotals(
                name,
                sum(sizes[b] for b in blobs if holders[b] == 1),
                sum(sizes[b] for b in blobs if holders[b] > 1),
            )
            for name, blobs in shown
        ]


@dataclass(frozen=True)
class StoreIndex:
    """What one listing of the whole store tells the UI: which images hold each layer,
    each repository's blobs, the distinct bytes every tag references."""

    layers: LayerIndex
    holdings: Holdings
    total: int
    warnings: list[str]
    made: datetime
    #: Of the walk it was made from (`_fingerprint`): the same walk is not indexed again.
    fingerprint: int | None = None


def _fingerprint(walk: Walk) -> int:
    """What changes when a tag is pushed, moved or deleted: every tag link's listing."""
    if not walk.repositories:  # V1: the summaries are all a walk keeps
        return hash(tuple(walk.summaries.items()))
    return hash(
        tuple(
            (name, tag, link.modified, link.size, link.checksum)
            for name, repo in walk.repositories.items()
            for tag, link in repo.tags.items()
        )
    )


def _store_index(listing: Listing, layers: LayerIndex, v1: bool) -> StoreIndex:
    sizes: dict[str, int] = {}
    blobs: dict[str, frozenset[str]] = {}
    for repo in listing.repositories:
        for tag in repo.tags:
            sizes.update(tag.blob_sizes)
        held = frozenset(b for t in repo.tags for b in t.blob_sizes)
        blobs[_shown_name(repo.name, v1)] = held
    holdings = Holdings(blobs, sizes)
    return StoreIndex(layers, holdings, sum(sizes.values()), listing.warnings, datetime.now(UTC))


@dataclass
class StorageSummary:
    holdings: Holdings  # each repository's blobs: `holdings.totals(visible)` for a viewer
    total: int  # distinct bytes every tag references
    gc_items: dict[str, int]  # kind -> how many gc --dry-run would delete
    gc_bytes: int
    warnings: list[str] = field(default_factory=list)


def on_driver(layout: Layout, driver: Driver) -> Layout:
    """The same store as `layout`, read through `driver` (a wrapper of its own)."""
    if isinstance(layout, V2Layout):
        return V2Layout(driver, layout.root)
    return V1Layout(driver, layout.root)


class StoreView:
    """The store a UI shows: `layout` at `location` (as shown, redacted).

    Kept between requests: the last walk of `repositories/` (renewed in the background
    after `ttl` seconds, or `RENEW_AFTER` times what the last walk took; `forget` walks
    one repository again), the names listed before the first walk ended (`NameStream`),
    the index of the whole store made after a walk (`StoreIndex`), and every manifest
    read (by digest: a manifest never changes), at most `MANIFESTS_KEPT` of them, all
    read through the manifest-facts cache (`facts`; `close` it when done).

    Storage is read through `RootKept`: a store moved away or deleted while the UI runs
    fails its reads ("cannot read storage ...") instead of reading as an empty one."""

    def __init__(
        self,
        layout: Layout,
        location: str,
        ttl: float = LISTING_TTL,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._root = RootKept(layout.driver)
        self.layout = on_driver(layout, self._root)
        self.location = location
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._walked: tuple[float, Walk] | None = None
        self._refresh: threading.Thread | None = None
        self._forgotten = 0  # `forget` calls: a walk begun before one is out of date
        self._manifests: dict[Digest, Manifest] = {}
        self._index: StoreIndex | None = None
        self._indexing: threading.Thread | None = None
        self._index_again = False  # a walk ended while indexing: index once more after
        self._names: NameStream | None = None  # names listed before the first walk ended
        self._walk_seconds = 0.0  # what the last walk took
        self._walk_failed: str | None = None  # the last walk's fault, if it failed
        # manifests are read through the facts cache shared with ls, gc and the server, so
        # a UI started again reads none it (or they) read before
        self.facts: ManifestFacts | None = None
        self.registry: Registry | None = None
        if isinstance(self.layout, V2Layout):
            self.facts = open_cache(store_identity(self.layout))
            self.registry = Registry(self.layout, JOBS, facts=self.facts)

    def close(self) -> None:
        """Write what the facts cache learnt and release its file."""
        if self.facts is not None:
            self.facts.close()

    @property
    def v1(self) -> bool:
        return isinstance(self.layout, V1Layout)

    def forget(self, name: str) -> None:
        """Walk repository `name` again now (after a delete), keeping the rest of the
        kept walk."""
        with self._lock:
            self._forgotten += 1
        if not isinstance(self.layout, V2Layout):
            with self._lock:
                self._walked = None
            return
        again = self.layout.scan_repositories(name)
        with self._lock:
            if self._walked is None:
                return
            at, walk = self._walked
            repositories = Repositories({n: r for n, r in walk.repositories.items() if n != name})
            repositories.update(again)
            summaries = {n: s for n, s in walk.summaries.items() if n != name}
            summaries.update(
                {n: _summary([t.modified for t in r.tags.values()]) for n, r in again.items()}
            )
            ordered = sorted(summaries.items(), key=lambda s: catalog_order(s[0]))
            self._walked = (at, Walk(repositories, dict(ordered)))

    def _walk(self) -> Walk:
        """The kept walk; once due for renewal, it is still answered while a new walk
        runs in the background (one at a time). Before the first walk has ended, waits
        for it (or makes it)."""
        stale = False
        with self._lock:
            kept = self._walked
            if kept is not None:
                due = max(self.ttl, RENEW_AFTER * self._walk_seconds)
                stale = self.clock() - kept[0] >= due
                if stale and self._refresh is None:
                    self._refresh = threading.Thread(target=self._walk_in_background, daemon=True)
                    self._refresh.start()
                if self._walk_failed is not None:  # storage failing is not old news
                    raise StorageError(self._walk_failed)
            running = self._refresh
        if kept is not None:
            # a store gone away is not answered from the walk of it, whether this page
            # began the renewal or an earlier one did and it is still under way
            if stale:
                self._root.check_root()
            return kept[1]
        if running is not None:  # the first walk, begun by a catalog page: wait for it
            running.join()
            with self._lock:
                if self._walked is not None:
                    return self._walked[1]
        return self._walk_again()

    def _walk_soon(self) -> None:
        """Begin a walk in the background unless one is under way."""
        with self._lock:
            if self._refresh is None:
                self._refresh = threading.Thread(target=self._walk_in_background, daemon=True)
                self._refresh.start()

    def _walk_again(self) -> Walk:
        try:
            with self._lock:
                forgotten = self._forgotten
            began = self.clock()
            walk = self._walk_now()
            self._walk_seconds = self.clock() - began
            with self._lock:
                self._walk_failed = None
                if forgotten == self._forgotten or self._walked is None:
                    self._walked = (self.clock(), walk)
            self._index_soon()
            return walk
        finally:
            with self._lock:
                if self._refresh is threading.current_thread():
                    self._refresh = None

    def _walk_in_background(self) -> None:
        try:
            self._walk_again()
        except (RegtoolError, OSError) as e:  # the kept walk stays; the next request retries
            log.warning("walking %s failed: %s", self.location, e)
            if is_fault(e):  # pages answer it until a walk succeeds again
                with self._lock:
                    self._walk_failed = str(e)

    def wait_for_walk(self) -> None:
        """Returns once a background walk under way, the listing of names beside it and
        the indexing that follows it have ended (for tests)."""
        with self._lock:
            names = self._names
        if names is not None:
            names.join()  # which begins the walk
        with self._lock:
            running = self._refresh
        if running is not None:
            running.join()
        while True:
            with self._lock:
                indexing = self._indexing
            if indexing is None:
                return
            indexing.join()

    # --- the whole store's index -----------------------------------------------------
    def _index_soon(self) -> None:
        """Index the store again from the kept walk, in the background, one at a time."""
        with self._lock:
            if self._indexing is not None:
                self._index_again = True
                return
            self._indexing = threading.Thread(target=self._index_in_background, daemon=True)
            self._indexing.start()

    def _index_in_background(self) -> None:
        try:
            while True:
                with self._lock:
                    walked, last = self._walked, self._index
                seen = _fingerprint(walked[1]) if walked is not None else None
                try:
                    if seen is None or last is None or last.fingerprint != seen:
                        index = self._index_now()
                        with self._lock:
                            self._index = replace(index, fingerprint=seen)
                except (RegtoolError, OSError) as e:  # the last index stays
                    log.warning("indexing %s failed: %s", self.location, e)
                with self._lock:
                    if not self._index_again:
                        self._indexing = None
                        return
                    self._index_again = False
        except BaseException:
            with self._lock:
                self._indexing = None
            raise

    def _index_now(self, through: Layout | None = None) -> StoreIndex:
        """Every repository listed (`regtool ls`'s data, manifests through the facts
        cache), as an index of layers and totals per repository: from the kept walk, or
        from a walk of its own `through` the given layout (this store on another driver,
        one that counts requests, say)."""
        layout = through or self.layout
        if not isinstance(layout, V2Layout):
            listing = list_registry(layout, self.location, None, JOBS)
            return _store_index(listing, index_v1(listing, client_name), self.v1)
        scanned = None if through is not None else self._walk().repositories
        reader = self._reader(layout)
        listing = list_registry(layout, self.location, None, JOBS, scanned=scanned, reader=reader)
        self._keep(reader)

        def manifest(digest: Digest) -> Manifest | None:
            found = reader.cache.get(digest)
            return found if isinstance(found, Manifest) else None

        return _store_index(listing, index_v2(listing, manifest), self.v1)

    def store_index(self) -> StoreIndex | None:
        """The last index of the whole store, if one was made (see `_index_soon`)."""
        with self._lock:
            return self._index

    def _walk_now(self) -> Walk:
        if isinstance(self.layout, V2Layout):
            scanned = self.layout.scan_repositories()
            names = {n: _summary([t.modified for t in r.tags.values()]) for n, r in scanned.items()}
        else:
            v1 = self.layout.scan_repositories()
            names = {
                client_name(n): _summary([e.modified for e in r.tags.values()])
                for n, r in v1.items()
            }
            scanned = Repositories()
        return Walk(scanned, dict(sorted(names.items(), key=lambda s: catalog_order(s[0]))))

    def repositories(self) -> dict[str, tuple[int, datetime | None]]:
        """Every repository's (tag count, last push), from one walk, sorted by name."""
        return self._walk().summaries

    def catalog(
        self, visible: Callable[[str], bool], query: str = "", page: int = 1
    ) -> CatalogPage:
        """The `page`th page of the repositories `visible` lets through whose name holds
        `query` (case-insensitive), only those read in detail (tags, size) by
        `list_registry`. Before the first walk of the store has ended (one is begun in
        the background), the names come from a depth-first listing of directories
        (`NameStream`): a page waits for the names up to its last row alone, and the
        count may not be known yet (`CatalogPage.complete`)."""
        needle = query.strip().lower()

        def wanted(name: str) -> bool:
            return needle in name.lower() and visible(name)

        page = max(page, 1)
        summaries: dict[str, tuple[int, datetime | None]] = {}
        stream = self._name_stream()
        found = None if stream is None else stream.matching(wanted, page * PAGE_SIZE + 1)
        if found is not None and (found[1] is not None or len(found[0]) > page * PAGE_SIZE):
            names, counted = found
            matching = counted if counted is not None else len(names)
            pages = max(1, -(-matching // PAGE_SIZE))
            complete = counted is not None
        else:  # a walk has ended (or the listing stopped for it)
            summaries = self._walk().summaries
            names = [n for n in summaries if wanted(n)]
            matching, pages, complete = len(names), max(1, -(-len(names) // PAGE_SIZE)), True
        page = min(page, pages)
        shown = names[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        listing = self.listing(shown)
        sizes = {
            _shown_name(r.name, self.v1): sum(
                dict(p for t in r.tags for p in t.blob_sizes.items()).values()
            )
            for r in listing.repositories
        }
        read = {
            _shown_name(r.name, self.v1): _summary([t.pushed for t in r.tags])
            for r in listing.repositories
        }
        rows = [
            CatalogRow(n, *(summaries.get(n) or read.get(n) or (0, None)), size=sizes.get(n))
            for n in shown
        ]
        return CatalogPage(rows, matching, page, pages, listing.warnings, complete)

    def _name_stream(self) -> NameStream | None:
        """The names being listed while no walk has ended (begun with that walk), or None
        once one has (and for V1 stores, whose walk is the listing)."""
        with self._lock:
            if self._walked is not None or not isinstance(self.layout, V2Layout):
                return None
            stream = self._names
        if stream is None:
            with self._lock:
                if self._names is None:
                    # the walk begins once the names are listed: beside a page's requests,
                    # a thread parsing a whole tree holds Python's lock at every turn
                    self._names = NameStream(
                        self.layout.iter_repository_names(),
                        lambda: self._walked is not None,
                        then=self._walk_soon,
                    )
                stream = self._names
        return stream

    def names(self) -> list[str]:
        """Every repository's name, in catalog order: from the kept walk, else from the
        listing of names (waiting for its end)."""
        stream = self._name_stream()
        if stream is not None:
            found, counted = stream.matching(lambda _: True, sys.maxsize)
            if counted is not None:
                return found
        return list(self._walk().summaries)

    def listing(self, names: list[str]) -> Listing:
        """`regtool ls LOCATION NAME`'s data for each of `names` (V1: `library/` implied),
        from the kept walk; a name it does not hold (pushed since, or no walk has ended
        yet) is walked on its own and left out if it is not there either."""
        if not isinstance(self.layout, V2Layout):
            listing = Listing(self.location, self.layout.kind)
            for name in names:
                try:
                    one = list_registry(self.layout, self.location, name, JOBS)
                except NotFound:
                    continue
                listing.repositories += one.repositories
                listing.warnings += one.warnings
            return listing
        with self._lock:
            kept, failed = self._walked, self._walk_failed
        if failed is not None:  # the kept walk is of a store that cannot be read now
            raise StorageError(failed)
        walk = kept[1].repositories if kept is not None else Repositories()
        scanned = Repositories({n: walk[n] for n in names if n in walk})
        layout = self.layout
        alone = map_outcomes(layout.scan_repositories, [n for n in names if n not in walk], JOBS)
        raise_faults(alone.values())
        for found in alone.values():
            if isinstance(found, Repositories):
                scanned.update(found)
        reader = self._reader()
        listing = list_registry(
            self.layout, self.location, None, JOBS, scanned=scanned, reader=reader
        )
        self._keep(reader)
        return listing

    def _reader(self, layout: V2Layout | None = None) -> ManifestReader:
        """A reader (of `layout`: this store, through another driver) through the facts
        cache, holding the manifests kept in memory."""
        store = layout or self.layout
        assert isinstance(store, V2Layout)
        reader = ManifestReader(store, JOBS, self.facts)
        with self._lock:
            reader.cache.update(self._manifests)
        return reader

    def _keep(self, reader: ManifestReader) -> None:
        """Keep what `reader` read, in memory and (written now) in the facts file."""
        if self.facts is not None:
            self.facts.flush()
        with self._lock:
            if len(self._manifests) > MANIFESTS_KEPT:
                self._manifests.clear()
            self._manifests.update(
                (d, m) for d, m in reader.cache.items() if isinstance(m, Manifest)
            )

    def holds(self, name: str) -> bool:
        """Whether the store holds repository `name` now (V2: one `stat` of its
        `_manifests`; V1: the kept walk names it)."""
        if isinstance(self.layout, V2Layout):
            return self.layout.driver.exists(self.layout.manifests_dir(name))
        return name in self._walk().summaries

    def repository(self, name: str) -> tuple[RepositoryInfo, list[str]]:
        """The repository's tags (`TagInfo`) and the warnings listing them gave;
        `NotFound` when the store does not hold it."""
        listing = self.listing([name])
        if not listing.repositories:
            raise NotFound(f"repository {name} not found")
        return listing.repositories[0], listing.warnings

    # --- images ----------------------------------------------------------------------
    def image(
        self, name: str, reference: str, visible: Callable[[str], bool] = lambda _: True
    ) -> ImageDetails:
        """The manifest `reference` (a digest or a tag) of repository `name` (V1: an image
        id or a tag), with its config, layers (and the other images of repositories
        `visible` lets through that hold each), children and referrers. `NotFound` when
        the repository does not hold it."""
        if isinstance(self.layout, V1Layout):
            return self._v1_image(self.layout, name, reference, visible)
        assert self.registry is not None
        reader = self._reader()
        try:
            ref = Digest.parse(reference) if ":" in reference else check_tag(reference)
            digest = self.registry.resolve(name, ref)
            if not self.registry.has_revision(name, digest):
                raise NotFound(f"{name}: no manifest {reference[:100]!r}")
            manifest = reader.get(digest)
        except ManifestInvalid as e:
            raise NotFound(f"{name}: {e}") from None
        except (ValueError, RegtoolError) as e:
            if is_fault(e):
                raise
            raise NotFound(f"{name}: no manifest {reference[:100]!r}") from None
        self._keep(reader)
        info, _ = self.repository(name)
        details = ImageDetails(
            name,
            str(digest),
            manifest.media_type,
            manifest.kind,
            tags=[t.tag for t in info.tags if t.digest == str(digest)],
            annotations=dict(manifest.annotations),
            artifact_type=manifest.artifact_type,
            subject=str(manifest.subject.digest) if manifest.subject else None,
        )
        if manifest.is_index:
            details.children = [_child(c) for c in manifest.manifests]
            details.size = sum(c.size or 0 for c in manifest.manifests)
        else:
            self._describe_image(details, manifest, info, visible)
        found = self.registry.referrers(name, digest, None)["manifests"]
        details.referrers = [
            Referrer(
                r["digest"], r.get("artifactType", ""), r["mediaType"], r.get("annotations", {})
            )
            for r in found
        ]
        return details

    def _describe_image(
        self,
        details: ImageDetails,
        manifest: Manifest,
        info: RepositoryInfo,
        visible: Callable[[str], bool],
    ) -> None:
        layers = [(str(d.digest), d.media_type, d.size) for d in manifest.layers]
        self._share(details, layers, info, visible)
        details.size = sum(d.size or 0 for d in manifest.blobs)
        config = manifest.config
        if config is None or config.size is None or config.size > MAX_CONFIG_SIZE:
            return
        if "json" not in config.media_type:  # an artifact's config: not an image's
            return
        assert isinstance(self.layout, V2Layout)
        try:
            doc = load_json(self.layout.read_blob(config.digest))
        except (FileNotFoundError, ValueError):
            return
        _read_config(details, doc)

    def _v1_image(
        self, layout: V1Layout, name: str, reference: str, visible: Callable[[str], bool]
    ) -> ImageDetails:
        stored = canonical_name(name)
        try:
            image_id = check_image_id(reference)
        except RegtoolError:
            image_id = layout.tag_image_id(stored, reference)
        try:
            ancestry = layout.ancestry(image_id)
            doc = layout.read_json(image_id, "json")
        except FileNotFoundError:
            raise NotFound(f"{name}: no image {reference[:100]!r}") from None
        info, _ = self.repository(name)
        ids = {t.image_id for t in info.tags}
        if image_id not in ids and not any(image_id in t.blob_sizes for t in info.tags):
            raise NotFound(f"{name}: no image {reference[:100]!r}")  # another repository's
        details = ImageDetails(
            name,
            image_id,
            "application/vnd.docker.v1.image",
            "v1 image",
            tags=[t.tag for t in info.tags if t.image_id == image_id],
        )
        _read_config(details, doc, v1=True)
        sizes = next((t.blob_sizes for t in info.tags if t.image_id == image_id), {})
        layers = [(i, "v1 layer", sizes.get(i)) for i in reversed(ancestry)]
        self._share(details, layers, info, visible)
        details.size = sum(sizes.values())
        return details

    def _share(
        self,
        details: ImageDetails,
        layers: list[tuple[str, str, int | None]],
        info: RepositoryInfo,
        visible: Callable[[str], bool],
    ) -> None:
        """`details.layers` from (digest, media type, size) each, with the images that
        hold each layer: of this repository from `info` (just listed), of the others
        from the store's index where one was made."""
        listing = Listing(self.location, self.layout.kind, [info])
        # this repository's manifests were kept by the listing just made
        here = index_v1(listing, client_name) if self.v1 else index_v2(listing, self._manifests.get)
        store = self.store_index()
        if store is None:
            details.sharing_note = "other repositories are still being read: not shown yet"
        elif store.layers.partial:
            details.sharing_note = "the store is too large to index whole: some images left out"
        name, digest = details.name, details.reference

        def elsewhere(repository: str) -> bool:
            return repository != name and visible(repository)

        for layer, media_type, size in layers:
            shown, more = here.others(layer, name, digest, visible)
            if store is not None:
                theirs, more_theirs = store.layers.others(layer, name, digest, elsewhere)
                shown, more = shown + theirs, more + more_theirs
            cut = max(0, len(shown) - SHOWN)
            details.layers.append(Layer(layer, media_type, size, tuple(shown[:SHOWN]), more + cut))

    # --- storage ---------------------------------------------------------------------
    def storage(
        self, through: Layout | None = None, step: Callable[[str], None] = lambda _: None
    ) -> StorageSummary:
        """Bytes each repository holds alone and shares (a new index of the whole store,
        kept for the image pages too), and what `gc --dry-run` would delete (`gc.collect`,
        nothing deleted), read `through` the given layout (this store on another driver)
        where given. `step` is told each step's name as it begins."""
        step("listing every repository")
        index = self._index_now(through)
        with self._lock:
            self._index = index
        step("gc --dry-run")
        layout = through or self.layout
        plan = collect(layout, self.location, GcOptions(dry_run=True, jobs=JOBS), facts=self.facts)
        if self.facts is not None:
            self.facts.flush()
        kinds = {kind: n for kind, n in plan.items.counts.items() if n}
        return StorageSummary(
            index.holdings, index.total, kinds, plan.bytes(), index.warnings + plan.warnings
        )


def _shown_name(name: str, v1: bool) -> str:
    return client_name(name) if v1 else name


def _summary(times: list[datetime | None]) -> tuple[int, datetime | None]:
    known = [t for t in times if t is not None]
    return len(times), max(known) if known else None


def _child(d: Descriptor) -> Child:
    return Child(str(d.digest), d.media_type, str(d.platform) if d.platform else "", d.size)


#: The image config's `config` members the image page shows, in its order.
CONFIG_FIELDS = ("Entrypoint", "Cmd", "Env", "WorkingDir", "User", "ExposedPorts", "Labels")


def _read_config(details: ImageDetails, doc: object, v1: bool = False) -> None:
    """Fill `details` from an image config (OCI image spec `config`, `history`,
    `os`/`architecture`; a V1 image JSON has the same `config` member)."""
    if not isinstance(doc, dict):
        return
    inner = doc.get("config")
    if isinstance(inner, dict):
        details.config = {k: inner[k] for k in CONFIG_FIELDS if inner.get(k) not in (None, "")}
    os_name, arch = doc.get("os"), doc.get("architecture")
    if isinstance(os_name, str) and isinstance(arch, str):
        details.platform = f"{os_name}/{arch}"
    created = doc.get("created")
    details.created = created if isinstance(created, str) else None
    history = doc.get("history")
    if isinstance(history, list) and not v1:
        details.history = [h for h in history if isinstance(h, dict)]
