"""One retention run: plan (and unless a dry run, carry out) what a selector asks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from regtool.concurrency import DEFAULT_JOBS
from regtool.layout.detect import Layout
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest
from regtool.retention.apply_v2 import Hooks, apply
from regtool.retention.decide import PullTimes
from regtool.retention.estimate import freed_bytes
from regtool.retention.inventory import read_tag_digests, scan
from regtool.retention.model import RetentionResult
from regtool.retention.plan_v2 import SizedReader, plan_repository
from regtool.retention.select import Selector
from regtool.retention.v1 import apply_v1, plan_v1

#: Pull times of one repository's manifests (digest or V1 image id -> last pull), or None
#: where the store keeps no pull records.
PulledFor = Callable[[str], PullTimes | None]


@dataclass(frozen=True)
class RetentionOptions:
    dry_run: bool = False
    jobs: int = DEFAULT_JOBS
    #: Estimate the bytes a gc would free afterwards (reads every manifest of the store);
    #: by default in a dry run only.
    estimate: bool | None = None
    now: datetime | None = None
    hooks: Hooks = field(default_factory=Hooks)


def _no_records(name: str) -> None:
    return None


@contextmanager
def _phase(result: RetentionResult, name: str) -> Iterator[None]:
    t0 = time.monotonic()
    try:
        yield
    finally:
        result.phases[name] = result.phases.get(name, 0.0) + time.monotonic() - t0


def run_retention(
    layout: Layout,
    location: str,
    selector: Selector,
    options: RetentionOptions,
    pulled_for: PulledFor = _no_records,
) -> RetentionResult:
    """Plan, and unless `options.dry_run` carry out, what `selector` asks. Raises
    `NotFound` for a repository, tag or manifest named that is not there, and a storage
    fault met before the first deletion (nothing is deleted then)."""
    now = options.now or datetime.now(UTC)
    result = RetentionResult(location, layout.kind, options.dry_run)
    if isinstance(layout, V2Layout):
        _run_v2(layout, selector, options, now, pulled_for, result)
    else:
        with _phase(result, "plan"):
            plans, warnings = plan_v1(layout, selector, now, options.jobs, pulled_for)
        result.repositories, result.warnings = plans, warnings
        if not options.dry_run:
            if options.hooks.before_tags:
                options.hooks.before_tags()
            with _phase(result, "delete"):
                apply_v1(layout, plans, options.jobs)
    result.requests = layout.driver.request_count()
    return result


def _run_v2(
    layout: V2Layout,
    selector: Selector,
    options: RetentionOptions,
    now: datetime,
    pulled_for: PulledFor,
    result: RetentionResult,
) -> None:
    estimate = options.dry_run if options.estimate is None else options.estimate
    with _phase(result, "list"):
        facts = scan(layout)
    result.warnings += facts.warnings
    with _phase(result, "plan"):
        names = selector.repositories(facts)
        chosen = [facts[n] for n in names]
        read_tag_digests(layout, chosen, options.jobs)
        reader = SizedReader(layout, options.jobs)
        wanted: set[Digest] = set()
        for repo in facts.values() if estimate else chosen:
            wanted |= repo.index.revisions | repo.tagged()
        reader.fetch(wanted)
        planned = [
            plan_repository(layout, repo, selector, reader, now, pulled_for(repo.name))
            for repo in chosen
        ]
    result.repositories = [p.plan for p in planned]
    for p in planned:
        if p.undecided:
            result.undecided = True
            result.warnings.append(p.undecided)
        result.refused += p.refused
    if estimate:
        deleted = {(m.repository, m.digest) for m in result.manifests(keep=False)}
        gone = {Digest.parse(d) for _, d in deleted}
        # Tags of repositories out of scope were not read: their manifests are revisions.
        staying = {
            d
            for name, repo in facts.items()
            for d in repo.index.revisions | repo.tagged()
            if (name, str(d)) not in deleted
        }
        result.bytes_freed_estimate = freed_bytes(gone, staying, reader, reader.sizes)
    if not options.dry_run:
        with _phase(result, "delete"):
            result.warnings += apply(
                layout, result.repositories, facts, reader, options.jobs, options.hooks
            )
