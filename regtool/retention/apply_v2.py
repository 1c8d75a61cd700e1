"""Carrying out a V2 retention plan while the registry may be serving.

1. Compare and delete tags: just before deleting, each tag's `current/link` is read and
   stat'ed again; a tag that names another manifest or was written since it was planned
   (re-pushed, even with the same digest) stays. Then `delete_many` of every unchanged
   tag's files (Swift: bulk deletes, several at once).
2. Re-check before manifests go: `repositories/` (or the one repository) is walked
   again; a manifest that a tag written since planning names, or that a revision stored
   since lists as a child, stays.
3. `delete_many` of the manifests' revision links and history entries.

What no re-check can see: a tag re-pushed in the instant between its re-read and its
deletion (step 1), and one pushed between the re-check and the manifests' deletion (3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from regtool.concurrency import map_outcomes
from regtool.errors import RegtoolError, is_fault, raise_faults
from regtool.layout.manifests import ManifestReader
from regtool.layout.v2 import CorruptLink, V2Layout, link_checksum
from regtool.oci import Digest
from regtool.retention.deletion import delete_paths, same_time
from regtool.retention.inventory import RepositoryFacts, read_tag_digests, scan
from regtool.retention.model import (
    CHANGED,
    DELETED,
    FAILED,
    ManifestDecision,
    RepositoryPlan,
    TagDecision,
)


@dataclass
class Hooks:
    """Calls at the points where a registry serving meanwhile matters (tests make
    interleavings deterministic with them)."""

    before_tags: Callable[[], None] | None = None  # planned; nothing deleted yet
    before_manifests: Callable[[], None] | None = None  # tags deleted; before the re-check


def apply(
    layout: V2Layout,
    plans: list[RepositoryPlan],
    facts: dict[str, RepositoryFacts],
    reader: ManifestReader,
    jobs: int,
    hooks: Hooks,
) -> list[str]:
    """Carry out `plans` (planned from `facts`), setting each decision's outcome; returns
    warnings. A storage fault before the first deletion is raised (nothing deleted);
    after it, what is left undone is marked FAILED with the fault."""
    if hooks.before_tags:
        hooks.before_tags()
    doomed_tags = [t for p in plans for t in p.deleted_tags]
    _delete_tags(layout, doomed_tags, jobs)
    doomed = [m for p in plans for m in p.deleted_manifests]
    if not doomed:
        return []
    if hooks.before_manifests:
        hooks.before_manifests()
    warnings: list[str] = []
    try:
        spared = _recheck(layout, plans, facts, reader, jobs)
    except (RegtoolError, OSError) as e:
        if not is_fault(e):
            raise
        for m in doomed:
            m.outcome, m.error = FAILED, f"not deleted: the re-check met a fault ({e})"
        return [f"manifests not deleted: the re-check before deleting them failed: {e}"]
    for m in doomed:
        why = spared.get((m.repository, m.digest))
        if why is not None:
            m.keep, m.reason, m.outcome = True, why, CHANGED
            warnings.append(f"{m.repository}: manifest {m.digest} kept: {why}")
    _delete_all(layout, [m for m in doomed if m.outcome is None], jobs)
    return warnings


def _delete_tags(layout: V2Layout, tags: list[TagDecision], jobs: int) -> None:
    def current(t: TagDecision) -> tuple[datetime | None, str | None]:
        """(time, digest) the tag's current link has now; one HEAD where its checksum
        tells the digest (Swift), else a stat and a read."""
        path = layout.tag_current_link(t.repository, t.tag)
        stat = layout.driver.stat(path)
        if stat.checksum is not None and t.target is not None:
            same = stat.checksum == link_checksum(Digest.parse(t.target))
            return stat.modified, t.target if same else None
        try:
            return stat.modified, str(layout.read_link(path))
        except CorruptLink:
            return stat.modified, None  # damaged: compared by its time alone

    outcomes = map_outcomes(current, tags, jobs)
    raise_faults(outcomes.values())
    go = []
    for t, outcome in outcomes.items():
        if isinstance(outcome, FileNotFoundError):
            t.outcome = DELETED  # gone already: someone deleted it meanwhile
        elif isinstance(outcome, Exception):
            t.outcome, t.error = FAILED, str(outcome)
        elif outcome[1] != t.target or not same_time(outcome[0], t.pushed):
            t.keep, t.outcome = True, CHANGED
        else:
            go.append(t)
    _delete_all(layout, go, jobs)


def _delete_all(
    layout: V2Layout, decisions: list[TagDecision] | list[ManifestDecision], jobs: int
) -> None:
    """Delete every path of `decisions`, setting their outcomes."""
    failed = delete_paths(layout.driver, [d.paths for d in decisions], jobs)
    for d in decisions:
        errors = [failed[p] for p in d.paths if p in failed]
        d.outcome, d.error = (FAILED, errors[0]) if errors else (DELETED, None)


def _recheck(
    layout: V2Layout,
    plans: list[RepositoryPlan],
    facts: dict[str, RepositoryFacts],
    reader: ManifestReader,
    jobs: int,
) -> dict[tuple[str, str], str]:
    """(repository, digest) -> why, for the doomed manifests something written since the
    plan reaches: a tag written since (new, re-pushed or changed) or a new revision."""
    names = [p.name for p in plans if p.deleted_manifests]
    now = scan(layout, names[0]) if len(names) == 1 else scan(layout)
    spared: dict[tuple[str, str], str] = {}
    for name in names:
        before, after = facts[name], now.get(name)
        if after is None:
            continue
        changed = {
            tag: f
            for tag, f in after.tags.items()
            if tag not in before.tags
            or not same_time(f.link.modified, before.tags[tag].link.modified)
            or f.link.size != before.tags[tag].link.size
        }
        after.tags = changed
        read_tag_digests(layout, [after], jobs)
        roots: dict[Digest, str] = {}
        for tag, f in changed.items():
            if f.digest is not None:
                roots.setdefault(f.digest, f"tag {tag} was written during the run")
            elif f.error is not None:  # cannot tell what it names: keep them all
                roots.update(dict.fromkeys(before.index.revisions, f"tag {tag} unreadable"))
        for digest in after.index.revisions - before.index.revisions:
            roots.setdefault(digest, f"manifest {digest.short()} was stored during the run")
        reader.fetch(roots)
        reached = _reach(roots, reader)
        plan = next(p for p in plans if p.name == name)
        for m in plan.deleted_manifests:
            why = reached.get(Digest.parse(m.digest))
            if why is not None:
                spared[(name, m.digest)] = why
    return spared


def _reach(roots: dict[Digest, str], reader: ManifestReader) -> dict[Digest, str]:
    reached = dict(roots)
    stack = list(roots)
    while stack:
        digest = stack.pop()
        try:
            children = [c.digest for c in reader.get(digest).manifests]
        except RegtoolError:
            continue
        for child in children:
            if child not in reached:
                reached[child] = f"in index {digest.short()}, {reached[digest]}"
                stack.append(child)
    return reached
