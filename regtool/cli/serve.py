"""`regtool serve`: the OCI Distribution registry on the store a LOCATION names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from regtool.cli.store import ConfigOption, IdentityOption, LocationOption
from regtool.errors import UsageError
from regtool.location import parse_location

DEFAULT_ADDR = "127.0.0.1:5000"


def parse_addr(text: str) -> tuple[str, int]:
    """`host:port`, `:port` (all interfaces, as distribution reads it) or `[v6]:port`."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--addr must be HOST:PORT, not {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def _config_addr(config: str) -> str | None:
    """`http.addr` of a distribution config file, if it sets one."""
    import yaml

    try:
        doc: Any = yaml.safe_load(Path(config).read_text())
    except (OSError, yaml.YAMLError):
        return None  # parse_location reports a broken config properly
    http = doc.get("http") if isinstance(doc, dict) else None
    addr = http.get("addr") if isinstance(http, dict) else None
    return str(addr) if addr else None


def serve(
    location_arg: Annotated[
        str | None, typer.Argument(metavar="[LOCATION]", help="Where the storage is.")
    ] = None,
    location: LocationOption = None,
    config: ConfigOption = None,
    identity: IdentityOption = None,
    addr: Annotated[
        str | None,
        typer.Option(
            "--addr",
            help=f"HOST:PORT to listen on (default {DEFAULT_ADDR}, or http.addr of --config).",
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn log level: info shows each request.")
    ] = "info",
) -> None:
    """Serve the registry (OCI Distribution API) over HTTP; Ctrl-C stops it."""
    import uvicorn  # imported late: only serve needs it

    from regtool.server.app import create_app

    host, port = parse_addr(addr or (config and _config_addr(config)) or DEFAULT_ADDR)
    loc = parse_location(location_arg or location, config=config, identity=identity)
    driver = loc.open()
    try:
        driver.create_root()  # the embedded store's first run; a new Swift container
        app = create_app(driver)
        typer.echo(f"regtool serve: listening on http://{host}:{port}", err=True)
        typer.echo(f"regtool serve: storage {loc.redacted()} ({driver.name})", err=True)
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=True, lifespan="off")
    finally:
        driver.close()
