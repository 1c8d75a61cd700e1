"""Planning retention on a V2 (distribution) store: from one walk of `repositories/`, the
tag links the listing cannot tell, and the manifests of the repositories in scope (to
find indexes and referrers), a decision on every tag and on the manifests they name."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from regtool.errors import ManifestInvalid
from regtool.layout.manifests import ManifestReader
from regtool.layout.v2 import V2Layout
from regtool.layout.v2_delete import manifest_paths
from regtool.oci import Digest, Manifest, parse_manifest
from regtool.retention.closure import decide_manifests
from regtool.retention.decide import PullTimes, TagState, Verdict
from regtool.retention.inventory import RepositoryFacts
from regtool.retention.model import ManifestDecision, RepositoryPlan, TagDecision
from regtool.retention.select import WITH_ITS_MANIFEST, Selector


class SizedReader(ManifestReader):
    """A `ManifestReader` that also remembers each manifest's size in bytes."""

    def __init__(self, layout: V2Layout, jobs: int):
        super().__init__(layout, jobs)
        self.sizes: dict[Digest, int] = {}

    def _read(self, digest: Digest) -> Manifest:
        data = self.layout.read_manifest_bytes(digest)
        self.sizes[digest] = len(data)
        try:
            return parse_manifest(data)
        except ManifestInvalid as e:
            raise ManifestInvalid(f"manifest {digest}: {e}") from None


@dataclass
class PlannedRepository:
    plan: RepositoryPlan
    undecided: str | None = None  # why no manifest of it is deleted, if something is unreadable
    refused: list[str] = field(default_factory=list)  # manifests named to go that must stay


def tag_states(repo: RepositoryFacts) -> list[TagState]:
    return [
        TagState(t.tag, str(t.digest) if t.digest else None, t.link.modified)
        for t in sorted(repo.tags.values(), key=lambda t: t.tag)
    ]


def plan_repository(
    layout: V2Layout,
    repo: RepositoryFacts,
    selector: Selector,
    reader: ManifestReader,
    now: datetime,
    pulled: PullTimes | None,
) -> PlannedRepository:
    """Decide every tag of `repo` and the manifests they name. `reader` must have fetched
    the repository's revisions and tagged manifests."""
    states = tag_states(repo)
    choice = selector.choose(repo.name, states, repo.index.revisions, now, pulled)
    verdicts = dict(choice.verdicts)
    kept_roots: dict[Digest, str] = {}
    condemned: dict[Digest, str] = dict(choice.condemned)
    unreadable_kept = []
    for tag, facts in sorted(repo.tags.items()):
        verdict = verdicts[tag]
        if facts.digest is None:
            if verdict.keep:
                unreadable_kept.append(f"tag {tag}: {facts.error}")
            continue
        if verdict.keep:
            kept_roots.setdefault(facts.digest, f"tag {tag} is kept")
        else:
            condemned.setdefault(facts.digest, f"tag {tag} is deleted")
    tagged = repo.tagged()
    if choice.delete_untagged:
        for digest in sorted(repo.index.revisions - tagged):
            condemned.setdefault(digest, "untagged")
    outcome = decide_manifests(
        repo.index.revisions, kept_roots, condemned, reader, selector.keep_referrers
    )
    undecided = None
    problems = unreadable_kept + [f"{d}: {e}" for d, e in sorted(outcome.unreadable.items())]
    if problems:
        undecided = f"{repo.name}: no manifest deleted, as some cannot be read ({problems[0]})"
        outcome.deleted.clear()
    # A tag `rm` condemned with its manifest stays if the manifest does.
    for tag, facts in repo.tags.items():
        if verdicts[tag].reason == WITH_ITS_MANIFEST and facts.digest not in outcome.deleted:
            why = outcome.spared.get(facts.digest) if facts.digest else None
            verdicts[tag] = Verdict(True, f"its manifest stays: {why or 'cannot be read'}")
    plan = RepositoryPlan(repo.name)
    staying_history = [
        (tag, history)
        for tag, history in sorted(repo.index.tag_history.items())
        if tag not in verdicts or verdicts[tag].keep
    ]
    for tag, facts in sorted(repo.tags.items()):
        verdict = verdicts[tag]
        plan.tags.append(
            TagDecision(
                repo.name,
                tag,
                str(facts.digest) if facts.digest else None,
                facts.link.modified,
                verdict.keep,
                verdict.reason,
                () if verdict.keep else tuple(facts.files),
            )
        )
    for digest, why in sorted(outcome.deleted.items()):
        paths = manifest_paths(layout, repo.name, digest, staying_history)
        plan.manifests.append(ManifestDecision(repo.name, str(digest), False, why, tuple(paths)))
    for digest, why in sorted(outcome.spared.items()):
        plan.manifests.append(ManifestDecision(repo.name, str(digest), True, why))
    if undecided:
        for digest in sorted((set(condemned) & repo.index.revisions) - set(outcome.spared)):
            plan.manifests.append(
                ManifestDecision(repo.name, str(digest), True, "some manifests cannot be read")
            )
    refused = [
        f"{repo.name}@{digest} not deleted: {outcome.spared[digest]}"
        for digest in sorted(choice.condemned)
        if digest in outcome.spared
    ]
    return PlannedRepository(plan, undecided, refused)
