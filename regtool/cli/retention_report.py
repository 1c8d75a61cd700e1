"""What `regtool rm` and `regtool prune` print: the plan or what was done, per repository,
as a table or `--json`; and the gc that `--gc` runs after them."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer

from regtool.cli.duration_option import DURATION
from regtool.cli.errors import EXIT_PROBLEMS, EXIT_USAGE, exit_code_for, message_for
from regtool.cli.gc import gc_document, print_gc
from regtool.cli.output import error, human_size, iso_time, plural, print_json, print_table, warn
from regtool.cli.store import Store
from regtool.errors import RegtoolError, is_fault
from regtool.gc import GcOptions, GcResult, collect
from regtool.retention import (
    CHANGED,
    DELETED,
    FAILED,
    ManifestDecision,
    RetentionResult,
    TagDecision,
)

#: Options `rm` and `prune` share.
KeepReferrersOption = Annotated[
    bool,
    typer.Option(
        "--keep-referrers", help="Keep the referrers (signatures, SBOMs) of deleted manifests."
    ),
]
GcOption = Annotated[bool, typer.Option("--gc", help="Run gc afterwards to free what was deleted.")]
MinAgeOption = Annotated[
    timedelta, typer.Option("--min-age", help="gc: never delete anything younger.", **DURATION)
]
SettleOption = Annotated[
    timedelta, typer.Option("--settle", help="gc: wait before its last re-check.", **DURATION)
]


def run_gc(store: Store, min_age: timedelta, settle: timedelta, jobs: int) -> GcResult:
    """`regtool gc` on the store just pruned, with gc's own guarantees; a storage fault
    stops it (exit 2), as it stops `regtool gc`."""
    options = GcOptions(min_age=min_age, settle=settle, jobs=jobs)
    try:
        return collect(store.layout, store.location.redacted(), options)
    except (RegtoolError, OSError) as e:
        if not is_fault(e):
            raise
        error(f"{message_for(e)}; gc stopped, nothing was deleted by it")
        raise typer.Exit(exit_code_for(e)) from None


def _action(d: TagDecision | ManifestDecision, dry_run: bool) -> str:
    if d.outcome == CHANGED:
        return "kept (changed)"
    if d.keep:
        return "keep"
    if dry_run:
        return "would delete"
    if d.outcome == FAILED:
        return "FAILED"
    return "deleted" if d.outcome == DELETED else "delete"


def _short(digest: str | None) -> str:
    if digest is None:
        return "-"
    return digest[:19] if digest.startswith("sha256:") else digest[:12]


def report(result: RetentionResult, gc: GcResult | None, as_json: bool) -> None:
    """Print the result (and the gc after it), then exit 1 if something failed or could
    not be decided, 2 if gc met a fault."""
    if as_json:
        print_json(document(result, gc))
    else:
        for message in result.warnings:
            warn(message)
        _print(result)
        if gc is not None:
            typer.echo()
            typer.echo("gc:")
            for message in gc.warnings:
                warn(message)
            print_gc(gc)
    failed = [(t.repository, t.tag, t.error) for t in result.tags(False) if t.outcome == FAILED]
    failed += [(m.repository, m.digest, m.error) for m in result.manifests(False)]
    for repository, what, why in failed:
        if why is not None:
            error(f"{repository}: {what} not deleted: {why}")
    for message in result.refused:
        error(message)
    if gc is not None and gc.fault is not None:
        error(f"{gc.fault}; gc stopped: no blob data was deleted, run it again")
        raise typer.Exit(EXIT_USAGE)
    if not result.ok or (gc is not None and not gc.ok):
        raise typer.Exit(EXIT_PROBLEMS)


def _print(r: RetentionResult) -> None:
    tag_rows = [
        [
            t.repository,
            t.tag,
            _short(t.target),
            iso_time(t.pushed) or "-",
            _action(t, r.dry_run),
            t.reason,
        ]
        for t in r.tags()
    ]
    if tag_rows:
        print_table(tag_rows, ["REPOSITORY", "TAG", "DIGEST", "PUSHED", "ACTION", "REASON"])
    manifest_rows = [
        [m.repository, _short(m.digest), _action(m, r.dry_run), m.reason] for m in r.manifests()
    ]
    if manifest_rows:
        typer.echo()
        print_table(manifest_rows, ["REPOSITORY", "MANIFEST", "ACTION", "REASON"])
    if tag_rows or manifest_rows:
        typer.echo()
    deleted_tags, deleted_manifests = r.tags(False), r.manifests(False)
    verb = "would delete" if r.dry_run else "deleted"
    if not r.dry_run:
        deleted_tags = [t for t in deleted_tags if t.outcome == DELETED]
        deleted_manifests = [m for m in deleted_manifests if m.outcome == DELETED]
    line = (
        f"{plural(len(r.repositories), 'repository', 'repositories')}: "
        f"{verb} {plural(len(deleted_tags), 'tag')} and "
        f"{plural(len(deleted_manifests), 'manifest')}, kept {plural(len(r.tags(True)), 'tag')}"
    )
    if r.bytes_freed_estimate is not None:
        line += f"; gc would then free about {human_size(r.bytes_freed_estimate)}"
    typer.echo(line)
    if r.failed:
        typer.echo(f"{plural(r.failed, 'deletion')} FAILED", err=True)


def document(r: RetentionResult, gc: GcResult | None) -> dict[str, Any]:
    return {
        "location": r.location,
        "layout": r.layout,
        "dry_run": r.dry_run,
        "repositories": [
            {
                "name": p.name,
                "tags": [
                    {
                        "tag": t.tag,
                        "digest": t.target,
                        "pushed": iso_time(t.pushed),
                        "keep": t.keep,
                        "reason": t.reason,
                        "outcome": t.outcome,
                        "error": t.error,
                        "paths": list(t.paths),
                    }
                    for t in p.tags
                ],
                "manifests": [
                    {
                        "digest": m.digest,
                        "keep": m.keep,
                        "reason": m.reason,
                        "outcome": m.outcome,
                        "error": m.error,
                        "paths": list(m.paths),
                    }
                    for m in p.manifests
                ],
            }
            for p in r.repositories
        ],
        "totals": {
            "tags_kept": len(r.tags(True)),
            "tags_deleted": len(r.tags(False)),
            "manifests_deleted": len(r.manifests(False)),
            "failed": r.failed,
            "bytes_freed_estimate": r.bytes_freed_estimate,
            "requests": r.requests,
            "seconds": {k: round(v, 3) for k, v in r.phases.items()},
        },
        "undecided": r.undecided,
        "refused": r.refused,
        "warnings": r.warnings,
        "gc": gc_document(gc) if gc is not None else None,
    }
