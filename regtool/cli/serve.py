"""`regtool serve`: the OCI Distribution registry on the store a LOCATION names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from regtool.cli.store import ConfigOption, IdentityOption, LocationOption
from regtool.errors import UsageError
from regtool.location import parse_location

DEFAULT_ADDR = "127.0.0.1:5000"


# HOST:PORT in ASCII, matched whole: a host name or IPv4 address (or none), or an IPv6
# address in brackets; a port of ASCII digits (`isdigit()` and `int()` take any script's).
_ADDR_RE = re.compile(
    r"(?:(?P<host>[A-Za-z0-9._-]*)|\[(?P<v6>[0-9A-Fa-f:.]+(?:%[A-Za-z0-9._-]+)?)\])"
    r":(?P<port>[0-9]{1,5})",
    re.ASCII,
)


def parse_addr(text: str) -> tuple[str, int]:
    """`host:port`, `:port` (all interfaces, as distribution reads it) or `[v6]:port`;
    `UsageError` for anything else, or a port outside 1-65535."""
    m = _ADDR_RE.fullmatch(text)
    if not m or not 0 < int(m.group("port")) < 65536:
        raise UsageError(f"--addr must be HOST:PORT, not {text[:80]!r}")
    return m.group("v6") or m.group("host") or "0.0.0.0", int(m.group("port"))


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
