"""`regtool rm REPOSITORY:TAG | REPOSITORY@DIGEST ... [--dry-run]`."""

from __future__ import annotations

from typing import Annotated

import typer

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
from regtool.layout.v2 import V2Layout
from regtool.retention import ReferenceSelector, RetentionOptions, parse_reference, run_retention


def rm(
    references: Annotated[
        list[str],
        typer.Argument(
            metavar="REFERENCE...",
            help="REPOSITORY:TAG (untag) or REPOSITORY@DIGEST (delete the manifest and "
            "every tag on it); * and ? in repository and tag (** across components).",
            show_default=False,
        ),
    ],
    keep_referrers: KeepReferrersOption = False,
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
    """Delete tags, or manifests with every tag on them, from storage.

    Untagging leaves the manifest if another tag names it or a kept index lists it, and
    deletes it otherwise (with the children of a deleted index that nothing else needs,
    and its referrers unless --keep-referrers); a manifest a kept index lists is not
    deleted by digest either. Blob data is gc's: add --gc. A name that is not there is an
    error (exit 2, nothing deleted); a pattern that matches nothing is a warning. Safe
    while the registry serves, as prune is. V1 stores: tags only."""
    with open_store(location, config, identity) as store:
        v1 = not isinstance(store.layout, V2Layout)
        refs = [parse_reference(r, v1=v1) for r in references]
        if v1 and any(r.digest is not None for r in refs):
            raise UsageError("a V1 store has no manifests to delete by digest: name a tag")
        selector = ReferenceSelector(refs, keep_referrers)
        options = RetentionOptions(dry_run=dry_run, jobs=jobs)
        result = run_retention(store.layout, store.location.redacted(), selector, options)
        after = run_gc(store, min_age, settle, jobs) if gc and not dry_run else None
    for text in selector.unmatched:
        warn(f"nothing matches {text}")
    report(result, after, as_json)
