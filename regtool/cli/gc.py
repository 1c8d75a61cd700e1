"""`regtool gc [--dry-run] [--delete-untagged] [--min-age 1h] [--uploads-older-than 24h]`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer

from regtool.cli.duration_option import DURATION
from regtool.cli.errors import EXIT_PROBLEMS, EXIT_USAGE, exit_code_for, message_for
from regtool.cli.output import error, human_size, plural, print_json, print_table, warn
from regtool.cli.store import (
    ConfigOption,
    DryRunOption,
    IdentityOption,
    JobsOption,
    JsonOption,
    LocationOption,
    NoCacheOption,
    open_facts,
    open_store,
)
from regtool.concurrency import DEFAULT_JOBS
from regtool.errors import RegtoolError, is_fault
from regtool.gc import GcOptions, GcResult, collect
from regtool.gc.model import KINDS


def gc(
    dry_run: DryRunOption = False,
    delete_untagged: Annotated[
        bool,
        typer.Option(
            "--delete-untagged",
            help="Also delete manifests that no tag reaches (a tagged index's children "
            "and the referrers of kept manifests are never untagged).",
        ),
    ] = False,
    min_age: Annotated[
        timedelta,
        typer.Option("--min-age", help="Never delete anything younger than this.", **DURATION),
    ] = "1h",  # type: ignore[assignment]  # parsed, as any value, by DURATION's parser
    uploads_older_than: Annotated[
        timedelta,
        typer.Option(
            "--uploads-older-than",
            help="Delete uploads idle for longer than this.",
            **DURATION,
        ),
    ] = "24h",  # type: ignore[assignment]
    orphan_segments: Annotated[
        bool,
        typer.Option(
            "--orphan-segments",
            help="Swift: also delete segment sets no large object names. Costs one HEAD "
            "per large object (without it, only the segments of what gc deletes go).",
        ),
    ] = False,
    settle: Annotated[
        timedelta,
        typer.Option(
            "--settle",
            help="After deleting links, wait this long before the last re-check: longer "
            "than the registry takes to store one manifest.",
            **DURATION,
        ),
    ] = "5s",  # type: ignore[assignment]
    location: LocationOption = None,
    config: ConfigOption = None,
    identity: IdentityOption = None,
    as_json: JsonOption = False,
    jobs: JobsOption = DEFAULT_JOBS,
    no_cache: NoCacheOption = False,
) -> None:
    """Delete blobs no manifest references, links to them, stale uploads, their Swift
    segments, and (V1) images no tag's ancestry reaches.

    Safe while the registry runs: nothing younger than --min-age is deleted (a push in
    progress holds young blobs and links); repositories/ is walked again before deleting,
    and a repository changed since the mark began keeps everything it references. Links
    go before blobs, so the registry refuses a manifest that arrives later; gc then waits
    --settle, walks once more and writes back the links of repositories that changed. A
    push during gc completes intact or fails visibly. Not guaranteed: a manifest that
    takes longer than --settle to store, a blob uploaded again in the moment before its
    deletion. A damaged manifest or tag link keeps every blob its repository links; a
    link file that does not name its blob is kept with what it links, and reported.

    A storage fault that outlasts the retries (a timeout, a dropped connection,
    throttling) stops gc: before it deletes anything, nothing is deleted; after the links
    went, no blob data is deleted (run gc again). Exit 0 on success, 1 if some deletions
    failed, 2 on a storage fault, access or usage errors."""
    options = GcOptions(
        dry_run=dry_run,
        delete_untagged=delete_untagged,
        min_age=min_age,
        uploads_older_than=uploads_older_than,
        orphan_segments=orphan_segments,
        settle=settle,
        jobs=jobs,
    )
    with open_store(location, config, identity) as store, open_facts(store, no_cache) as facts:
        try:
            result = collect(store.layout, store.location.redacted(), options, facts=facts)
        except (RegtoolError, OSError) as e:
            if not is_fault(e):
                raise
            error(f"{message_for(e)}; gc stopped, nothing was deleted")
            raise typer.Exit(exit_code_for(e)) from None
    if as_json:
        print_json(gc_document(result))
    else:
        for message in result.warnings:
            warn(message)
        print_gc(result)
    if result.fault is not None:
        error(f"{result.fault}; gc stopped: no blob data was deleted, run it again")
        raise typer.Exit(EXIT_USAGE)
    if not result.ok:
        raise typer.Exit(EXIT_PROBLEMS)


def gc_document(r: GcResult) -> dict[str, Any]:
    return {
        "location": r.location,
        "layout": r.layout,
        "dry_run": r.dry_run,
        "objects": [
            {
                "kind": i.kind,
                "name": i.name,
                "repository": i.repository,
                "size": i.size,
                "reason": i.reason,
                "paths": list(i.paths),
                "deleted": r.done(i),
            }
            for i in r.items
        ],
        "totals": {
            "marked": r.marked_blobs,
            "manifests_read": r.manifests_read,
            **{kind: r.count(kind) for kind in KINDS},
            "deleted": {kind: r.count_done(kind) for kind in KINDS},
            "items_failed": r.items_failed,
            "bytes_freed": r.bytes_freed,
            "kept_young": r.kept_young,
            "kept_changed": r.kept_changed,
            "failed": len(r.failed),
            "requests": r.requests,
            "seconds": {k: round(v, 3) for k, v in r.phases.items()},
        },
        "failed": r.failed,
        "fault": r.fault,
        "warnings": r.warnings,
    }


def print_gc(r: GcResult) -> None:
    rows = [
        [
            i.kind,
            i.repository or "-",
            _short(i.name),
            human_size(i.size),
            i.reason,
            "would delete" if r.dry_run else ("deleted" if r.done(i) else "FAILED"),
        ]
        for i in r.items
    ]
    if rows:
        print_table(rows, ["KIND", "REPOSITORY", "OBJECT", "SIZE", "REASON", "STATUS"])
        typer.echo()
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in r.phases.items())
    read = plural(r.manifests_read, "manifest")
    marked = f"{plural(r.marked_blobs, 'blob')} marked ({read} read)"
    if r.dry_run:
        eligible = _counts({k: r.count(k) for k in KINDS})
        typer.echo(f"{marked}; eligible: {eligible}; would free {human_size(r.bytes_freed)}")
    else:
        deleted = _counts({k: r.count_done(k) for k in KINDS})
        failed = _counts({k: r.count(k) - r.count_done(k) for k in KINDS})
        typer.echo(
            f"{marked}; deleted: {deleted}"
            + (f"; NOT deleted: {failed}" if r.items_failed else "")
            + f"; freed {human_size(r.bytes_freed)}"
        )
    requests = f"; {plural(r.requests, 'request')}" if r.requests is not None else ""
    typer.echo(
        f"kept: {r.kept_young} younger than --min-age, {r.kept_changed} changed during gc; "
        f"time: {phases}{requests}"
    )
    if r.failed:
        count = plural(len(r.failed), "path")
        typer.echo(f"{count} NOT deleted (everything else listed was):", err=True)
        for path, why in sorted(r.failed.items())[:50]:
            typer.echo(f"  {path}: {why}", err=True)


#: How the footer counts each kind of item.
_KIND_WORDS = {
    "revision-link": ("revision link", "revision links"),
    "layer-link": ("_layers link", "_layers links"),
    "manifest": ("manifest", "manifests"),
    "blob": ("blob", "blobs"),
    "segments": ("segment set", "segment sets"),
    "upload": ("upload", "uploads"),
    "temp-file": ("temp file", "temp files"),
    "v1-image": ("V1 image", "V1 images"),
}


def _counts(by_kind: dict[str, int]) -> str:
    words = [plural(n, *_KIND_WORDS[kind]) for kind, n in by_kind.items() if n]
    return ", ".join(words) or "nothing"


def _short(name: str) -> str:
    return name[:19] if name.startswith("sha256:") else name
