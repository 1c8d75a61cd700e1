"""Opening the store a command works on: LOCATION options -> driver -> layout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import typer

from regtool.cli.output import warn
from regtool.facts import ManifestFacts, open_cache
from regtool.layout.detect import Layout, detect_layout
from regtool.layout.manifests import store_identity
from regtool.layout.v2 import V2Layout
from regtool.location import Location, parse_location
from regtool.storage.base import Driver

#: LOCATION as the command's argument, for commands that take it either way.
LocationArgument = Annotated[
    str | None,
    typer.Argument(
        metavar="LOCATION", help="Where the storage is (as --location).", show_default=False
    ),
]
LocationOption = Annotated[
    str | None,
    typer.Option(
        "--location",
        "-l",
        metavar="LOCATION",
        envvar="REGTOOL_LOCATION",
        show_envvar=True,
        help="Where the registry's storage is: /path, sftp://user@host/path, "
        "swift://container[/prefix], or a bare name (directory, else Swift container). "
        "Default: the embedded store of `regtool serve`.",
    ),
]
ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="A distribution config.yml to take the storage from (its REGISTRY_* variables "
        "applied, as distribution does).",
    ),
]
IdentityOption = Annotated[
    str | None,
    typer.Option(
        "--identity", "-i", metavar="KEYFILE", help="SSH private key for sftp:// locations."
    ),
]
JobsOption = Annotated[
    int,
    typer.Option("--jobs", "-j", metavar="N", min=1, max=256, help="Requests in flight at once."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NoCacheOption = Annotated[
    bool,
    typer.Option(
        "--no-cache",
        help="Read every manifest from storage; neither use nor fill the manifest cache "
        "(also REGTOOL_CACHE=off).",
    ),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", "-n", help="Report what would go; delete nothing.")
]


@dataclass
class Store:
    location: Location
    driver: Driver
    layout: Layout


@contextmanager
def open_facts(store: Store, no_cache: bool) -> Iterator[ManifestFacts | None]:
    """The manifest-facts cache of a V2 store (None for V1), written back when the block
    ends; disabled by `--no-cache` or `REGTOOL_CACHE=off`."""
    if not isinstance(store.layout, V2Layout):
        yield None
        return
    with open_cache(store_identity(store.layout), enabled=not no_cache) as facts:
        yield facts


@contextmanager
def open_store(location: str | None, config: str | None, identity: str | None) -> Iterator[Store]:
    """The store to read: `LocationError` for a bad or (local) missing LOCATION,
    `StorageError` when storage cannot be reached, `LayoutError` when it holds no registry."""
    loc = parse_location(location, config=config, identity=identity)
    for warning in loc.warnings:
        warn(warning)
    driver = loc.open()
    try:
        loc.check_exists(driver)
        yield Store(loc, driver, detect_layout(driver))
    finally:
        driver.close()
