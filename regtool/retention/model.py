"""What retention planned and did: plain data for the CLI to render."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

#: A decision's outcome after a real run. Planned-only decisions have `None`.
DELETED = "deleted"
CHANGED = "changed since planned: kept"
FAILED = "failed"


@dataclass(eq=False)  # one decision per tag: compared (and hashed) by identity
class TagDecision:
    """One tag: kept or deleted, and the rule that decided it.

    `target` is the manifest digest (V2) or image id (V1) the tag named when planned, None
    if its link could not be read; `pushed` is when its link was last written (the push
    time); `paths` the files that go with it (its `_manifests/tags/<tag>/` tree, or V1's
    `tag_<tag>` and `tag<tag>_json`)."""

    repository: str
    tag: str
    target: str | None
    pushed: datetime | None
    keep: bool
    reason: str
    paths: tuple[str, ...] = ()
    outcome: str | None = None
    error: str | None = None


@dataclass(eq=False)
class ManifestDecision:
    """A manifest revision that goes (`keep` False), or one a deleted tag named that stays
    (`keep` True: the reason says what keeps it). `paths`: its revision link and its
    entries in the history of tags that stay."""

    repository: str
    digest: str
    keep: bool
    reason: str
    paths: tuple[str, ...] = ()
    outcome: str | None = None
    error: str | None = None


@dataclass
class RepositoryPlan:
    name: str
    tags: list[TagDecision] = field(default_factory=list)
    manifests: list[ManifestDecision] = field(default_factory=list)

    @property
    def deleted_tags(self) -> list[TagDecision]:
        return [t for t in self.tags if not t.keep]

    @property
    def deleted_manifests(self) -> list[ManifestDecision]:
        return [m for m in self.manifests if not m.keep]


@dataclass
class RetentionResult:
    location: str
    layout: str
    dry_run: bool
    repositories: list[RepositoryPlan] = field(default_factory=list)
    #: Bytes a gc after this run would free (blobs only deleted images used), where
    #: estimated (a dry run of a V2 store); None otherwise.
    bytes_freed_estimate: int | None = None
    warnings: list[str] = field(default_factory=list)
    #: Something could not be decided (an unreadable tag link or manifest): what it could
    #: reach was kept.
    undecided: bool = False
    #: Manifests named for deletion (`rm REPO@DIGEST`) that something kept needs.
    refused: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    requests: int | None = None

    def tags(self, keep: bool | None = None) -> list[TagDecision]:
        return [t for r in self.repositories for t in r.tags if keep is None or t.keep == keep]

    def manifests(self, keep: bool | None = None) -> list[ManifestDecision]:
        return [m for r in self.repositories for m in r.manifests if keep is None or m.keep == keep]

    @property
    def failed(self) -> int:
        tags = sum(1 for t in self.tags(False) if t.outcome == FAILED)
        return tags + sum(1 for m in self.manifests(False) if m.outcome == FAILED)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.undecided and not self.refused
