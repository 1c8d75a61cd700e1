"""`regtool ui`: the web UI, read-only, straight from storage (no registry running)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Annotated

import typer

from regtool.cli.serve import listen, parse_addr
from regtool.cli.store import (
    ConfigOption,
    IdentityOption,
    LocationArgument,
    LocationOption,
    open_store,
)

DEFAULT_ADDR = "127.0.0.1:8080"


def ui(
    location_arg: LocationArgument = None,
    location: LocationOption = None,
    config: ConfigOption = None,
    identity: IdentityOption = None,
    addr: Annotated[
        str,
        typer.Option("--addr", metavar="HOST:PORT", help="Where to listen."),
    ] = DEFAULT_ADDR,
    htpasswd: Annotated[
        Path | None,
        typer.Option(
            "--htpasswd", metavar="FILE", help="Require signing in as a user of this file."
        ),
    ] = None,
    access: Annotated[
        Path | None,
        typer.Option(
            "--access",
            metavar="YAML",
            help="Access rules (as serve's): which repositories each user sees.",
        ),
    ] = None,
) -> None:
    """Browse a store's repositories, tags and images in a web browser, read-only: V2
    (distribution) and V1 stores, whether a registry serves them or not. Ctrl-C stops it."""
    import uvicorn  # imported late: only the servers need it
    from starlette.applications import Starlette

    from regtool.server.auth.guard import Guard
    from regtool.server.protocol import uvicorn_options
    from regtool.server.settings import ServerSettings
    from regtool.ui.app import ui_routes
    from regtool.ui.data import StoreView

    host, port = parse_addr(addr)
    settings = ServerSettings(read_only=True).with_flags(htpasswd=htpasswd, access=access)
    guard = Guard(settings)
    logging.getLogger("regtool").setLevel("INFO")
    with open_store(location_arg or location, config, identity) as store:
        view = StoreView(store.layout, store.location.redacted())
        app = guard.middleware(Starlette(routes=ui_routes(view, guard, writable=False)))
        sock = listen(host, port)
        shown = f"[{host}]" if ":" in host else host
        typer.echo(f"regtool ui: http://{shown}:{port}/ui/", err=True)
        typer.echo(
            f"regtool ui: storage {store.location.redacted()} ({store.layout.kind} layout), "
            "read-only",
            err=True,
        )
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **uvicorn_options(2)))
        with sock, contextlib.suppress(KeyboardInterrupt):
            try:
                server.run(sockets=[sock])
            finally:
                view.close()
