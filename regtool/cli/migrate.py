"""`regtool migrate SOURCE --to DESTINATION`: V1 images into distribution's layout."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

import typer

from regtool.cli.errors import EXIT_PROBLEMS, EXIT_USAGE
from regtool.cli.output import (
    error,
    human_size,
    plural,
    print_json,
    print_table,
    stderr_is_terminal,
)
from regtool.cli.progress import ByteBar
from regtool.cli.store import IdentityOption, JobsOption, JsonOption, LocationOption
from regtool.concurrency import DEFAULT_JOBS
from regtool.errors import LayoutError, UsageError
from regtool.layout.detect import detect_layout, find_v1_layout, v2_destination
from regtool.layout.v2 import V2Layout
from regtool.location import parse_location
from regtool.migrate.run import Migration, Options, Progress
from regtool.migrate.run import migrate as run_migration
from regtool.storage.base import Driver


class Format(StrEnum):
    docker = "docker"
    oci = "oci"


class Compression(StrEnum):
    gzip = "gzip"
    zstd = "zstd"
    none = "none"


def migrate(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="DESTINATION",
            help="Where the V2 images go (a LOCATION; may be the same store as SOURCE).",
            show_default=False,
        ),
    ],
    source: Annotated[
        str | None,
        typer.Argument(
            metavar="SOURCE",
            help="The V1 registry's storage: /path, sftp://user@host/path or "
            "swift://container/prefix (e.g. swift://docker_registry/docker-registry); "
            "or --location.",
            show_default=False,
        ),
    ] = None,
    repositories: Annotated[
        list[str] | None,
        typer.Option(
            "--repositories",
            "-r",
            metavar="GLOB",
            help="Only repositories matching this shell glob ('library/*'); repeatable, "
            "or comma-separated.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        Format,
        typer.Option("--format", help="Manifest format: docker (schema 2) or oci."),
    ] = Format.docker,
    compression: Annotated[
        Compression,
        typer.Option("--compression", help="Layer compression (zstd needs --format oci)."),
    ] = Compression.gzip,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check every tag's chain of images and list what would be migrated; "
            "write nothing (layers are read only by a real run).",
        ),
    ] = False,
    location: LocationOption = None,
    identity: IdentityOption = None,
    as_json: JsonOption = False,
    jobs: JobsOption = DEFAULT_JOBS,
) -> None:
    """Convert the images of a V1 (Python docker-registry) store into V2 images in
    distribution's layout, without a Docker engine: every tag's ancestry becomes an
    image that today's clients pull. The V1 store is only read. Running it again
    continues where it stopped; tags already migrated are skipped.

    Exit 0 when every tag was migrated or already there, 1 when some failed (damage:
    listed with the reason, the others migrated), 2 when storage could not be read or
    written (run it again) or on usage errors."""
    options = Options(
        patterns=tuple(p.strip() for v in repositories or [] for p in v.split(",") if p.strip()),
        fmt=fmt.value,
        compression=compression.value,
        jobs=jobs,
        dry_run=dry_run,
    )
    options.check()
    if not (source or location):
        raise UsageError("give the V1 store to migrate: SOURCE or --location")
    src_loc = parse_location(source or location, identity=identity)
    dst_loc = parse_location(to, identity=identity)
    progress = _RichProgress() if stderr_is_terminal() and not dry_run else None
    with _opened(src_loc.open()) as src_driver, _opened(dst_loc.open()) as dst_driver:
        src_loc.check_exists(src_driver)
        v1 = find_v1_layout(src_driver)
        if v1 is None:
            what = "a V2 registry" if _holds_v2(src_driver) else "no registry"
            raise LayoutError(
                f"{src_loc.redacted()} holds {what}, not a V1 one (images/ and repositories/)"
            )
        if not dry_run:
            dst_driver.create_root()
        elif dst_loc.scheme != "file":  # a directory not made yet reads as an empty store
            dst_loc.check_exists(dst_driver)
        v2 = v2_destination(dst_driver)
        try:
            result = run_migration(
                v1, v2, options, progress, src_loc.redacted(), dst_loc.redacted()
            )
        finally:
            if progress is not None:
                progress.stop()
    if as_json:
        print_json(migration_document(result))
    else:
        print_migration(result)
    if result.faults:
        error(
            f"{plural(len(result.faults), 'tag')} failed because storage did not answer: "
            "run the migration again to continue"
        )
        raise typer.Exit(EXIT_USAGE)
    if result.failed:
        raise typer.Exit(EXIT_PROBLEMS)


@contextlib.contextmanager
def _opened(driver: Driver) -> Iterator[Driver]:
    try:
        yield driver
    finally:
        driver.close()


class _RichProgress(ByteBar):
    """Layers converted of the total, bytes read, rate and ETA on stderr."""

    def __init__(self) -> None:
        super().__init__("migrating")
        self._done = 0
        self._count = 0

    def _describe(self) -> None:
        self.describe(f"migrating: {self._done}/{self._count} layers")

    def start(self, images: int, nbytes: int) -> None:
        self._count = images
        self.add_total(nbytes)
        self._describe()

    def image_done(self) -> None:
        self._done += 1
        self._describe()


_: type[Progress] = _RichProgress  # it satisfies the tool's progress protocol


def migration_document(m: Migration) -> dict[str, Any]:
    """The stable `--json` shape, documented in the README."""
    return {
        "source": m.source,
        "destination": m.destination,
        "dry_run": m.dry_run,
        "format": m.fmt,
        "compression": m.compression,
        "results": [
            {
                "repository": r.repository,
                "tag": r.tag,
                "status": r.status,
                "image_id": r.image_id,
                "digest": str(r.digest) if r.digest else None,
                "reason": r.reason,
                "replaces": str(r.replaces) if r.replaces else None,
            }
            for r in m.results
        ],
        "totals": {
            "tags": len(m.results),
            "migrated": m.count("migrated"),
            "skipped": m.count("skipped"),
            "failed": m.count("failed"),
            "planned": m.count("planned"),
            "layers_converted": m.layers_converted,
            "layers_reused": m.layers_reused,
            "empty_layers": m.empty_layers,
            "bytes_read": m.bytes_read,
            "bytes_written": m.bytes_written,
            "seconds": round(m.seconds, 3),
        },
    }


def print_migration(m: Migration) -> None:
    rows = [
        [
            r.repository,
            r.tag,
            r.status,
            str(r.digest)[:19] if r.digest else "-",
            r.reason or (f"replaces {str(r.replaces)[:19]}" if r.replaces else ""),
        ]
        for r in m.results
    ]
    if rows:
        print_table(rows, ["REPOSITORY", "TAG", "STATUS", "DIGEST", "REASON"])
        typer.echo()
    else:
        typer.echo(f"No V1 tags to migrate in {m.source}.")
    counts = ", ".join(
        f"{m.count(s)} {s}" for s in ("migrated", "skipped", "failed", "planned") if m.count(s)
    )
    rate = human_size(int(m.bytes_read / m.seconds)) + "/s" if m.seconds > 0 else "-"
    verb = "would go" if m.dry_run else "went"
    typer.echo(
        f"{plural(len(m.results), 'tag')} ({counts or 'none'}) from {m.source} {verb} to "
        f"{m.destination}; {plural(m.layers_converted, 'layer')} converted "
        f"({human_size(m.bytes_read)} read, {human_size(m.bytes_written)} written, "
        f"{rate}), {m.layers_reused} already converted, {m.empty_layers} empty; "
        f"{m.seconds:.1f} s"
    )


def _holds_v2(driver: Driver) -> bool:
    """Whether the store holds a V2 registry (an empty one counts as none)."""
    try:
        return any(True for _ in driver.list("")) and isinstance(detect_layout(driver), V2Layout)
    except LayoutError:
        return False
