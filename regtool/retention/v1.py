"""Retention on a V1 (Python `docker-registry`) store: tags only. Untagging removes
`tag_<tag>` and `tag<tag>_json`; the images a tag no longer reaches are gc's
(`regtool gc` deletes images no tag's ancestry reaches). Push time: the time of the
`tag_<tag>` file."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from regtool.concurrency import map_outcomes
from regtool.errors import NotFound, raise_faults
from regtool.layout.v1 import (
    CorruptImage,
    V1Layout,
    V1Repository,
    tag_file_name,
    tag_json_file_name,
)
from regtool.retention.decide import PullTimes, TagState
from regtool.retention.deletion import delete_paths, same_time
from regtool.retention.model import CHANGED, DELETED, FAILED, RepositoryPlan, TagDecision
from regtool.retention.select import Selector


def plan_v1(
    layout: V1Layout,
    selector: Selector,
    now: datetime,
    jobs: int,
    pulled_for: Callable[[str], PullTimes | None],
) -> tuple[list[RepositoryPlan], list[str]]:
    """A plan for every repository the selector picks, and warnings."""
    repos = layout.scan_repositories()
    names = selector.repositories(repos)
    pairs = [(n, tag) for n in names for tag in repos[n].tags]
    ids = map_outcomes(lambda nt: layout.tag_image_id(*nt), pairs, jobs)
    raise_faults(ids.values())
    plans, warnings = [], []
    for name in names:
        repo = repos[name]
        states = []
        for tag, entry in sorted(repo.tags.items()):
            image = ids[(name, tag)]
            target = None if isinstance(image, Exception) else image
            states.append(TagState(tag, target, entry.modified))
        choice = selector.choose(name, states, set(), now, pulled_for(name))
        if choice.delete_untagged:
            warnings.append(
                f"{name}: a V1 store has no manifests; `regtool gc` deletes images no tag reaches"
            )
        plan = RepositoryPlan(name)
        for state in states:
            verdict = choice.verdicts[state.tag]
            paths = () if verdict.keep else _tag_paths(layout, repo, state.tag)
            plan.tags.append(
                TagDecision(
                    name, state.tag, state.target, state.pushed, verdict.keep, verdict.reason, paths
                )
            )
        plans.append(plan)
    return plans, warnings


def _tag_paths(layout: V1Layout, repo: V1Repository, tag: str) -> tuple[str, ...]:
    """`tag_<tag>` and its `tag<tag>_json`, unless that name is another tag's tag file
    (`tag_dev_json` is the metadata of tag `_dev` and the tag file of tag `dev_json`)."""
    paths = [layout.tag_file(repo.name, tag)]
    json_name = tag_json_file_name(tag)
    if not any(tag_file_name(other) == json_name for other in repo.tags):
        paths.append(layout.tag_json_file(repo.name, tag))
    return tuple(paths)


def apply_v1(layout: V1Layout, plans: list[RepositoryPlan], jobs: int) -> None:
    """Compare and delete: a tag whose file names another image, or was written since it
    was planned, stays."""
    tags = [t for p in plans for t in p.deleted_tags]

    def current(t: TagDecision) -> tuple[datetime | None, str | None] | None:
        """(time, image id) of the tag's file now; None once it is gone."""
        try:
            stat = layout.driver.stat(layout.tag_file(t.repository, t.tag))
            return stat.modified, layout.tag_image_id(t.repository, t.tag)
        except (FileNotFoundError, NotFound):
            return None
        except CorruptImage:  # damaged: compared by its time alone
            return stat.modified, None

    outcomes = map_outcomes(current, tags, jobs)
    raise_faults(outcomes.values())
    go = []
    for t, outcome in outcomes.items():
        if outcome is None:
            t.outcome = DELETED  # gone already: someone deleted it meanwhile
        elif isinstance(outcome, Exception):
            t.outcome, t.error = FAILED, str(outcome)
        elif outcome[1] != t.target or not same_time(outcome[0], t.pushed):
            t.keep, t.outcome = True, CHANGED
        else:
            go.append(t)
    failed = delete_paths(layout.driver, [t.paths for t in go], jobs)
    for t in go:
        errors = [failed[p] for p in t.paths if p in failed]
        t.outcome, t.error = (FAILED, errors[0]) if errors else (DELETED, None)
