"""`regtool serve`: the OCI Distribution registry on the store a LOCATION names."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import socket
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from regtool.cli.store import ConfigOption, IdentityOption, LocationArgument, LocationOption
from regtool.errors import UsageError
from regtool.location import Location, parse_location
from regtool.server.settings import DEFAULT_ADDR, DEFAULT_DRAIN

if TYPE_CHECKING:
    from regtool.config import ConfigDocument
    from regtool.server.foreign_layers import UrlPolicy
    from regtool.server.operations import Operations
    from regtool.server.settings import ServerSettings

#: Seconds a stopping server waits for requests under way before it cuts them short.
SHUTDOWN_GRACE = round(DEFAULT_DRAIN.total_seconds())
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


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


def read_settings(
    config: str | None, env: Mapping[str, str], **flags: Any
) -> tuple[ServerSettings, ConfigDocument | None]:
    """The one settings object: the config file's (`--config`, with distribution's
    `REGISTRY_*` variables of `env` applied), then the flags given on top. Also the
    checked document, whose warnings the caller shows. `UsageError` for the first
    problem."""
    from regtool.config import ConfigDocument, load_config
    from regtool.server.settings import ServerSettings

    document = load_config(Path(config), env) if config else None
    base = ServerSettings.from_config(document or ConfigDocument({}))
    return base.with_flags(**flags), document


def serve(
    location_arg: LocationArgument = None,
    location: LocationOption = None,
    config: ConfigOption = None,
    identity: IdentityOption = None,
    addr: Annotated[
        str | None,
        typer.Option(
            "--addr",
            metavar="HOST:PORT",
            help=f"Where to listen (default {DEFAULT_ADDR}, or http.addr of --config).",
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            help="critical, error, warning, info (shows each request; the default), debug "
            "or trace (log.level of --config).",
        ),
    ] = None,
    shutdown_grace: Annotated[
        int | None,
        typer.Option(
            "--shutdown-timeout",
            metavar="SECONDS",
            min=0,
            help=f"On Ctrl-C or SIGTERM, how long requests under way may take before they "
            f"are cut short (an upload cut short stays resumable); http.draintimeout of "
            f"--config, default {SHUTDOWN_GRACE}.",
        ),
    ] = None,
    check_config: Annotated[
        bool,
        typer.Option(
            "--check-config",
            help="Check --config (and REGISTRY_* variables), print the settings they give "
            "with secrets hidden, and exit.",
        ),
    ] = False,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            metavar="PEM",
            help="Serve HTTPS with this certificate (its chain after it); needs --tls-key.",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", metavar="PEM", help="The certificate's key.")
    ] = None,
    tls_client_ca: Annotated[
        Path | None,
        typer.Option(
            "--tls-client-ca",
            metavar="PEM",
            help="Require client certificates issued by these CAs (http.tls.clientcas).",
        ),
    ] = None,
    htpasswd: Annotated[
        Path | None,
        typer.Option(
            "--htpasswd",
            metavar="FILE",
            help="Require Basic logins from this htpasswd file (bcrypt entries; re-read "
            "when it changes).",
        ),
    ] = None,
    access: Annotated[
        Path | None,
        typer.Option(
            "--access",
            metavar="YAML",
            help="Access rules: who may pull, push and delete which repositories.",
        ),
    ] = None,
    token_realm: Annotated[
        str | None,
        typer.Option("--token-realm", metavar="URL", help="Token auth: where clients get tokens."),
    ] = None,
    token_service: Annotated[
        str | None,
        typer.Option("--token-service", metavar="NAME", help="Token auth: the tokens' audience."),
    ] = None,
    token_issuer: Annotated[
        str | None,
        typer.Option("--token-issuer", metavar="NAME", help="Token auth: the tokens' issuer."),
    ] = None,
    token_rootcertbundle: Annotated[
        Path | None,
        typer.Option(
            "--token-rootcertbundle",
            metavar="PEM",
            help="Token auth: certificates whose keys sign the tokens.",
        ),
    ] = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Serve pulls only: every write is refused.")
    ] = False,
    no_delete: Annotated[
        bool, typer.Option("--no-delete", help="Refuse deletes (distribution's default).")
    ] = False,
    no_ui: Annotated[
        bool, typer.Option("--no-ui", help="Serve no web UI at /ui/ (the API alone).")
    ] = False,
) -> None:
    """Serve the registry (OCI Distribution API) over HTTP or HTTPS; Ctrl-C or SIGTERM
    stops it."""
    from regtool.cli.serve_settings import render_settings
    from regtool.location import location_from_document
    from regtool.server import tls
    from regtool.server.auth.guard import Guard
    from regtool.server.foreign_layers import UrlPolicy

    if (location_arg or location) and config:
        raise UsageError("give either a LOCATION or --config, not both")
    level = log_level.lower() if log_level else None
    if level is not None and level not in LOG_LEVELS:
        raise UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")
    settings, document = read_settings(
        config,
        os.environ,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        htpasswd=htpasswd,
        access=access,
        token_realm=token_realm,
        token_service=token_service,
        token_issuer=token_issuer,
        token_rootcertbundle=token_rootcertbundle,
        read_only=read_only,
        no_delete=no_delete,
        addr=addr,
        drain_timeout=None if shutdown_grace is None else timedelta(seconds=shutdown_grace),
        log_level=level,
    )
    for warning in document.warnings if document else ():
        typer.echo(f"regtool serve: warning: {warning}", err=True)
    if settings.http.net == "tcp":
        parse_addr(settings.http.addr)  # a bad address is refused before storage is opened
    foreign_urls = UrlPolicy.from_config(document.doc.get("validation") if document else None)
    if settings.tls is not None:
        tls.check(settings.tls)
    Guard(settings)  # an htpasswd file, rules file or token bundle that cannot be used
    if document is not None:
        loc = location_from_document(document)
    else:
        loc = parse_location(location_arg or location, identity=identity)
    if check_config:
        typer.echo(render_settings(settings, loc, document), nl=False)
        return
    _run(settings, loc, foreign_urls, ui=not no_ui)


def _run(settings: ServerSettings, loc: Location, foreign_urls: UrlPolicy, ui: bool) -> None:
    """Serves until Ctrl-C or SIGTERM, then waits up to `http.draintimeout` for the
    requests under way."""
    import uvicorn  # imported late: only serve needs it

    from regtool.server import tls
    from regtool.server.access_log import configure_logging
    from regtool.server.app import create_app
    from regtool.server.protocol import uvicorn_options

    level = settings.log.level
    python_level = {"trace": "DEBUG", "warn": "WARNING"}.get(level, level.upper())
    restore_logging = configure_logging(settings.log, python_level)
    try:  # a server run inside a longer process (tests) leaves its logging as it was
        http = settings.http
        ops = _operations(settings, http.addr)
        debug_sock = None
        on_sigterm = None
        driver = loc.open()
        try:
            driver.create_root()  # the embedded store's first run; a new Swift container
            app = create_app(driver, foreign_urls=foreign_urls, settings=settings, ops=ops, ui=ui)
            debug_sock = _debug_listen(settings)
            scheme = "https" if settings.tls else "http"
            if http.net == "unix":
                sock = listen_unix(http.addr)
                typer.echo(f"regtool serve: listening on unix socket {http.addr}", err=True)
            else:
                host, port = parse_addr(http.addr)
                sock = listen(host, port)
                shown = f"[{host}]" if ":" in host else host
                typer.echo(f"regtool serve: listening on {scheme}://{shown}:{port}", err=True)
            typer.echo(f"regtool serve: storage {loc.redacted()} ({driver.name})", err=True)
            if ui:
                where = (
                    f"unix socket {http.addr}"
                    if http.net == "unix"
                    else f"{scheme}://{shown}:{port}"
                )
                typer.echo(f"regtool serve: web UI at {where}{http.prefix}/ui/", err=True)
            if http.net == "tcp" and settings.tls is None and not tls.is_loopback(host):
                typer.echo(
                    f"regtool serve: warning: plain HTTP on {shown}:{port}, reachable from other "
                    "hosts: anyone on the network path can read and change what crosses it, "
                    "passwords and tokens included; serve TLS (--tls-cert, --tls-key) or put "
                    "a TLS proxy in front",
                    err=True,
                )
            uv_config = uvicorn.Config(
                app,
                log_level=python_level.lower(),
                log_config=None,  # configure_logging's handler and format
                access_log=False,  # regtool's own access lines (server.access_log)
                **uvicorn_options(round(http.drain_timeout.total_seconds())),
                **tls.uvicorn_options(settings.tls),
            )
            tls.harden(uv_config, settings.tls)
            server = uvicorn.Server(uv_config)
            # uvicorn drains on SIGTERM, then raises the signal again once it is done, whose
            # default action would kill the process: a stop asked for is a success (exit 0).
            on_sigterm = signal.signal(signal.SIGTERM, lambda signum, frame: None)
            with sock, _operated(ops, debug_sock), contextlib.suppress(KeyboardInterrupt):
                server.run(sockets=[sock])  # uvicorn re-raises Ctrl-C
        finally:
            if on_sigterm is not None:
                signal.signal(signal.SIGTERM, on_sigterm)
            if debug_sock is not None:
                debug_sock.close()
            driver.close()
    finally:
        restore_logging()


def _operations(settings: ServerSettings, addr: str) -> Operations:
    """Metrics, health, notifications and purging as `settings` ask (`Operations`). A
    read-only server purges no uploads: it writes nothing."""
    from regtool.server.operations import Operations

    purging = settings.upload_purging
    if settings.read_only:
        purging = dataclasses.replace(purging, enabled=False)
    return Operations.from_settings(
        settings.debug, settings.health, settings.notifications, purging, addr
    )


def _debug_listen(settings: ServerSettings) -> socket.socket | None:
    """The debug listener's socket (`http.debug.addr`), if one is set."""
    if settings.debug.addr is None:
        return None
    host, port = parse_addr(settings.debug.addr)
    return listen(host, port)


@contextlib.contextmanager
def _operated(ops: Operations, debug_sock: socket.socket | None) -> Iterator[None]:
    """`ops` running (and the debug listener on `debug_sock`) for the block."""
    from regtool.server.debug_server import DebugServer

    debug = None
    if debug_sock is not None:
        debug = DebugServer(ops, debug_sock)
        debug.start()
        host, port = debug_sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        typer.echo(f"regtool serve: debug listener on {shown}:{port}", err=True)
    ops.start()
    try:
        yield
    finally:
        ops.close()
        if debug is not None:
            debug.close()


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to HOST:PORT and listening, before anything says it listens;
    `UsageError` naming the address and the cause if that fails (a busy port, an
    address not on this host, a port below 1024 without the right)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as e:
        sock.close()
        shown = f"[{host}]" if ":" in host else host
        raise UsageError(f"cannot listen on {shown}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def listen_unix(path: str) -> socket.socket:
    """A Unix socket listening at `path` (`http.net: unix`); a stale socket file left by
    an earlier run is replaced. `UsageError` naming the path if that fails."""
    with contextlib.suppress(FileNotFoundError):
        if Path(path).is_socket():
            Path(path).unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on unix socket {path}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock
