"""`regtool ls [LOCATION] [REPOSITORY]`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from regtool.cli.output import (
    human_size,
    iso_time,
    plural,
    print_json,
    print_table,
    short_time,
    warn,
)
from regtool.cli.store import (
    ConfigOption,
    IdentityOption,
    JobsOption,
    JsonOption,
    LocationArgument,
    LocationOption,
    NoCacheOption,
    open_facts,
    open_store,
)
from regtool.concurrency import DEFAULT_JOBS
from regtool.inspect.listing import Listing, list_registry


def ls(
    location_arg: LocationArgument = None,
    repository: Annotated[
        str | None,
        typer.Argument(
            metavar="REPOSITORY",
            help="Only this repository (V1: library/ is implied).",
            show_default=False,
        ),
    ] = None,
    location: LocationOption = None,
    config: ConfigOption = None,
    identity: IdentityOption = None,
    as_json: JsonOption = False,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Show full digests.")] = False,
    jobs: JobsOption = DEFAULT_JOBS,
    no_cache: NoCacheOption = False,
) -> None:
    """List repositories and tags with digests, types, platforms, sizes and push times.

    Damaged data (a corrupt link, a manifest that does not parse, a missing blob) is a
    warning on stderr and the rest is still listed. A storage fault that outlasts the
    retries (a timeout, a dropped connection, throttling) stops the listing: exit 2,
    naming the cause. Exit 0 otherwise."""
    with (
        open_store(location_arg or location, config, identity) as store,
        open_facts(store, no_cache) as facts,
    ):
        listing = list_registry(
            store.layout, store.location.redacted(), repository, jobs, facts=facts
        )
    for message in listing.warnings:
        warn(message)
    if as_json:
        print_json(listing_document(listing))
    else:
        print_listing(listing, no_trunc)


def listing_document(listing: Listing) -> dict[str, Any]:
    """The stable `--json` shape, documented in the README."""
    return {
        "location": listing.location,
        "layout": listing.layout,
        "repositories": [
            {
                "name": repo.name,
                "tags": [
                    {
                        "tag": t.tag,
                        "digest": t.digest,
                        "image_id": t.image_id,
                        "media_type": t.media_type,
                        "platforms": t.platforms,
                        "size": t.size,
                        "pushed": iso_time(t.pushed),
                    }
                    for t in repo.tags
                ],
            }
            for repo in listing.repositories
        ],
        "totals": {
            "repositories": len(listing.repositories),
            "tags": listing.tag_count,
            "size": listing.total_size,
        },
        "warnings": listing.warnings,
    }


def print_listing(listing: Listing, no_trunc: bool) -> None:
    if not listing.repositories:
        typer.echo(f"No repositories in {listing.location} ({listing.layout} layout).")
        return
    rows = []
    for repo in listing.repositories:
        for t in repo.tags:
            ref = t.digest or t.image_id
            if ref and not no_trunc:
                ref = ref[: ref.index(":") + 13] if ":" in ref else ref[:12]
            rows.append(
                [
                    repo.name,
                    t.tag,
                    ref or "?",
                    t.kind or "?",
                    ",".join(t.platforms) or "-",
                    human_size(t.size),
                    short_time(t.pushed),
                ]
            )
    print_table(
        rows,
        [
            "REPOSITORY",
            "TAG",
            "DIGEST" if listing.layout == "v2" else "IMAGE ID",
            "TYPE",
            "PLATFORMS",
            "SIZE",
            "PUSHED (UTC)",
        ],
    )
    typer.echo(
        f"\n{plural(len(listing.repositories), 'repository', 'repositories')}, "
        f"{plural(listing.tag_count, 'tag')}, "
        f"{human_size(listing.total_size)} in distinct blobs"
    )
