"""`regtool prune [--keep-last N] [--older-than D] [--keep-tags RE] ... | --policy FILE`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from regtool.cli.duration_option import DURATION
from regtool.cli.output import warn
from regtool.cli.retention_report import (
    GcOption,
    KeepReferrersOption,
    MinAgeOption,
    SettleOption,
    report,
    run_gc,
)
from regtool.cli.store import (
    ConfigOption,
    DryRunOption,
    IdentityOption,
    JobsOption,
    JsonOption,
    LocationOption,
    open_store,
)
from regtool.concurrency import DEFAULT_JOBS
from regtool.errors import UsageError
from regtool.layout.pulls import read_pull_records
from regtool.layout.v2 import V2Layout
from regtool.retention import (
    Policy,
    PolicySelector,
    RetentionOptions,
    load_policy,
    make_rule,
    run_retention,
)
from regtool.retention.decide import PullTimes
from regtool.retention.run import PulledFor


def prune(
    keep_last: Annotated[
        int | None,
        typer.Option(
            "--keep-last", metavar="N", min=0, help="Keep the N most recently pushed tags."
        ),
    ] = None,
    older_than: Annotated[
        timedelta | None,
        typer.Option(
            "--older-than", help="Delete only tags pushed longer ago than this.", **DURATION
        ),
    ] = None,
    keep_within: Annotated[
        timedelta | None,
        typer.Option("--keep-within", help="Keep tags pushed within this.", **DURATION),
    ] = None,
    keep_pulled_within: Annotated[
        timedelta | None,
        typer.Option(
            "--keep-pulled-within",
            help="Keep tags whose manifest was pulled within this (pull records of "
            "`regtool serve`; refused on a store without them).",
            **DURATION,
        ),
    ] = None,
    keep_tags: Annotated[
        list[str] | None,
        typer.Option("--keep-tags", metavar="REGEX", help="Always keep tags matching (whole tag)."),
    ] = None,
    tags: Annotated[
        list[str] | None,
        typer.Option("--tags", metavar="REGEX", help="Only consider tags matching (whole tag)."),
    ] = None,
    repositories: Annotated[
        list[str] | None,
        typer.Option(
            "--repositories",
            metavar="GLOB",
            help="Only these repositories (* within a name component, ** across).",
        ),
    ] = None,
    delete_untagged: Annotated[
        bool,
        typer.Option(
            "--delete-untagged", help="Also delete manifests no tag, kept index or subject needs."
        ),
    ] = False,
    keep_referrers: KeepReferrersOption = False,
    policy_file: Annotated[
        str | None,
        typer.Option("--policy", metavar="FILE", help="A YAML policy of several rules."),
    ] = None,
    dry_run: DryRunOption = False,
    gc: GcOption = False,
    min_age: MinAgeOption = "1h",  # type: ignore[assignment]  # parsed by DURATION's parser
    settle: SettleOption = "5s",  # type: ignore[assignment]
    location: LocationOption = None,
    config: ConfigOption = None,
    identity: IdentityOption = None,
    as_json: JsonOption = False,
    jobs: JobsOption = DEFAULT_JOBS,
) -> None:
    """Delete tags by policy, per repository, and the manifests only they named.

    A rule covers the tags of its repositories that --tags matches; it keeps those
    --keep-tags matches, the --keep-last most recently pushed, those pushed within
    --keep-within or pulled within --keep-pulled-within, and deletes the other covered
    tags pushed longer ago than --older-than (any age without it). A tag is kept if any
    rule keeps it. Push time is when the tag's link was written. A manifest stays while a
    kept tag names it, a kept index lists it or its subject is kept.

    Safe while the registry serves: a tag re-pushed after planning is kept (compare and
    delete), and a manifest something new reaches stays. A dry run reports the plan a real
    run carries out, with an estimate of what gc would then free. Exit 0 on success, 1 if
    a deletion failed or something could not be read, 2 on bad input or access errors."""
    rule_flags = any(
        (
            keep_last is not None,
            older_than,
            keep_within,
            keep_pulled_within,
            keep_tags,
            tags,
            repositories,
            delete_untagged,
        )
    )
    if policy_file is not None:
        if rule_flags:
            raise UsageError("give either --policy or rule options, not both")
        policy = load_policy(policy_file)
        if keep_referrers:
            policy = Policy(policy.rules, keep_referrers=True)
    else:
        rule = make_rule(
            "options",
            repositories=repositories or (),
            tags=tags or (),
            keep_tags=keep_tags or (),
            keep_last=keep_last,
            keep_pushed_within=keep_within,
            keep_pulled_within=keep_pulled_within,
            delete_older_than=older_than,
            delete_untagged=delete_untagged,
        )
        policy = Policy((rule,), keep_referrers)
    options = RetentionOptions(dry_run=dry_run, jobs=jobs)
    selector = PolicySelector(policy)
    with open_store(location, config, identity) as store:
        pulled_for = _pull_records(store.layout) if policy.needs_pull_records else _none
        result = run_retention(
            store.layout, store.location.redacted(), selector, options, pulled_for
        )
        after = run_gc(store, min_age, settle, jobs) if gc and not dry_run else None
    for text in selector.unmatched:
        warn(f"no repository matches {text}")
    report(result, after, as_json)


def _none(name: str) -> None:
    return None


def _pull_records(layout: object) -> PulledFor:
    """Each repository's pull records; `UsageError` on a store that has none: "unknown" is
    never "not pulled"."""
    records = read_pull_records(layout) if isinstance(layout, V2Layout) else None
    if records is None:
        raise UsageError(
            "--keep-pulled-within needs pull records, and this store has none: "
            "`regtool serve` keeps them (distribution does not)"
        )

    def pulled_for(name: str) -> PullTimes:
        times = records.times.get(name, {})
        return PullTimes(records.since, {str(d): t for d, t in times.items()})

    return pulled_for
