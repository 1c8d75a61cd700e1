"""`regtool gc [--dry-run] [--delete-untagged] [--min-age 1h] [--uploads-older-than 24h]`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

import typer

from regtool.cli.errors import EXIT_PROBLEMS
from regtool.cli.output import human_size, print_json, print_table, warn
from regtool.cli.store import (
    ConfigOption,
    IdentityOption,
    JobsOption,
    JsonOption,
    LocationOption,
    open_store,
)
from regtool.concurrency import DEFAULT_JOBS
from regtool.gc import GcOptions, GcResult, collect
from regtool.gc.model import KINDS

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# ASCII digits, matched whole (Python's `\d` takes any Unicode digit).
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw])", re.ASCII | re.IGNORECASE)
_DURATION = re.compile(rf"0|(?:{_DURATION_PART.pattern})+", re.ASCII | re.IGNORECASE)


def parse_duration(text: str) -> timedelta:
    """`0`, `90s`, `30m`, `1h30m`, `2d`, `1w`."""
    if not _DURATION.fullmatch(text):
        raise typer.BadParameter(f"{text!r} is not a duration such as 0, 30m, 1h or 2d")
    parts = _DURATION_PART.findall(text)
    return timedelta(seconds=sum(float(n) * _UNITS[u.lower()] for n, u in parts))


# Durations are typed as `0`, `30m`, `1h30m`; a bad one names its option in the error.
_DURATION_OPTION: dict[str, Any] = {"parser": parse_duration, "metavar": "DURATION"}


def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Report what would go; delete nothing.")
    ] = False,
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
        typer.Option(
            "--min-age", help="Never delete anything younger than this.", **_DURATION_OPTION
        ),
    ] = "1h",  # type: ignore[assignment]  # parsed, as any value, by parse_duration
    uploads_older_than: Annotated[
        timedelta,
        typer.Option(
            "--uploads-older-than",
            help="Delete uploads idle for longer than this.",
            **_DURATION_OPTION,
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
            **_DURATION_OPTION,
        ),
    ] = "5s",  # type: ignore[assignment]
    location: LocationOption = None,
    config: ConfigOption = None,
    identity: IdentityOption = None,
    as_json: JsonOption = False,
    jobs: JobsOption = DEFAULT_JOBS,
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
    deletion. A manifest that cannot be read keeps every blob its repository links.
    Exit 0 on success, 1 if some deletions failed, 2 on access or usage errors."""
    options = GcOptions(
        dry_run=dry_run,
        delete_untagged=delete_untagged,
        min_age=min_age,
        uploads_older_than=uploads_older_than,
        orphan_segments=orphan_segments,
        settle=settle,
        jobs=jobs,
    )
    with open_store(location, config, identity) as store:
        result = collect(store.layout, store.location.redacted(), options)
    if as_json:
        print_json(gc_document(result))
    else:
        for message in result.warnings:
            warn(message)
        print_gc(result)
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
            "bytes_freed": r.bytes_freed,
            "kept_young": r.kept_young,
            "kept_changed": r.kept_changed,
            "failed": len(r.failed),
            "requests": r.requests,
            "seconds": {k: round(v, 3) for k, v in r.phases.items()},
        },
        "failed": r.failed,
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
    counts = ", ".join(f"{r.count(k)} {k}s" for k in KINDS if r.count(k)) or "nothing"
    verb = "would free" if r.dry_run else "freed"
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in r.phases.items())
    typer.echo(
        f"{r.marked_blobs} blobs marked ({r.manifests_read} manifests read); "
        f"{'eligible' if r.dry_run else 'deleted'}: {counts}; {verb} {human_size(r.bytes_freed)}"
    )
    typer.echo(
        f"kept: {r.kept_young} younger than --min-age, {r.kept_changed} changed during gc; "
        f"time: {phases}" + (f"; {r.requests} requests" if r.requests is not None else "")
    )
    if r.failed:
        typer.echo(f"{len(r.failed)} objects NOT deleted (everything else listed was):", err=True)
        for path, why in sorted(r.failed.items())[:50]:
            typer.echo(f"  {path}: {why}", err=True)


def _short(name: str) -> str:
    return name[:19] if name.startswith("sha256:") else name
