"""What a garbage collection found and did: plain data for the CLI to render."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from regtool.concurrency import DEFAULT_JOBS
from regtool.gc.spill import IN_MEMORY, Plan

#: Kinds of doomed objects, in the order they are deleted: links first, so the registry
#: stops serving something before its content goes; uploads last. A revision-link item
#: carries the manifest's `tags/*/index` links too. A temp-file is a writer's temporary
#: file that a crash or a failed cleanup left (one inside an upload goes with the upload).
KINDS = (
    "revision-link",
    "layer-link",
    "manifest",
    "blob",
    "segments",
    "upload",
    "temp-file",
    "v1-image",
)


@dataclass(frozen=True)
class GcOptions:
    dry_run: bool = False
    delete_untagged: bool = False
    min_age: timedelta = timedelta(hours=1)
    uploads_older_than: timedelta = timedelta(hours=24)
    orphan_segments: bool = False  # Swift: HEAD every large object to find orphaned sets
    # After deleting links, how long a manifest upload already past the registry's checks
    # may take to write its own links, before the re-check that would see them.
    settle: timedelta = timedelta(seconds=5)
    jobs: int = DEFAULT_JOBS
    # Marked blobs and plan items held in memory; more spill to a temporary sqlite file.
    in_memory: int = IN_MEMORY


@dataclass(frozen=True, slots=True)
class Doomed:
    """One thing gc removes: a blob, a link, an upload, a segment set or a V1 image, with
    every storage path that goes with it (a blob's DLO segments are their own item)."""

    kind: str
    name: str  # digest, upload id, segment set or image id
    paths: tuple[str, ...]
    size: int | None
    reason: str
    repository: str | None = None
    # what a link item's files hold when not `name`: an alias's target (gc/aliases.py)
    links_to: str | None = None

    @property
    def content(self) -> str:
        """The blob whose data this item is, or (a link item) that its files reach."""
        return self.links_to or self.name


@dataclass
class GcResult:
    location: str
    layout: str
    options: GcOptions
    items: Plan = field(init=False)
    marked_blobs: int = 0
    manifests_read: int = 0
    kept_young: int = 0  # unreferenced, but younger than --min-age
    kept_changed: int = 0  # dropped from the plan by the re-check before deleting
    warnings: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # path -> error (real run only)
    requests: int | None = None  # HTTP requests made (Swift)
    fault: str | None = None  # a storage fault that stopped the sweep part way
    #: Large objects (paths) of the plan deleted without their segments: a kept object
    #: names them too (gc/large_objects.py).
    keep_segments: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.items = Plan(threshold=self.options.in_memory)

    @property
    def dry_run(self) -> bool:
        return self.options.dry_run

    def done(self, item: Doomed) -> bool:
        """Whether every path of `item` was deleted (a real run without failures)."""
        return not self.dry_run and not any(p in self.failed for p in item.paths)

    # Summaries come from the plan's running counts where no item failed: a plan of
    # millions of items is not read back for them.
    def count(self, kind: str) -> int:
        """Items of `kind` in the plan (deleted, failed or, in a dry run, eligible)."""
        return self.items.counts[kind]

    def count_done(self, kind: str) -> int:
        """Items of `kind` deleted in full (a real run)."""
        if self.dry_run or not self.failed:
            return 0 if self.dry_run else self.items.counts[kind]
        return sum(1 for i in self.items if i.kind == kind and self.done(i))

    def bytes(self, kind: str | None = None) -> int:
        return self.items.sizes[kind] if kind else sum(self.items.sizes.values())

    @property
    def bytes_freed(self) -> int:
        """Bytes freed (real run) or that would be (dry run)."""
        if self.dry_run or not self.failed:
            return self.bytes()
        return sum(i.size or 0 for i in self.items if self.done(i))

    @property
    def items_failed(self) -> int:
        """Items of the plan a real run did not delete in full."""
        if self.dry_run or not self.failed:
            return 0
        return sum(1 for i in self.items if not self.done(i))

    @property
    def ok(self) -> bool:
        return not self.failed and self.fault is None
