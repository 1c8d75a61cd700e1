"""`regtool serve`: the OCI Distribution registry on the store a LOCATION names."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

from regtool.cli.store import ConfigOption, IdentityOption, LocationOption
from regtool.errors import UsageError
from regtool.location import parse_location

DEFAULT_ADDR = "127.0.0.1:5000"
#: Seconds a stopping server waits for requests under way before it cuts them short
#: (uvicorn waits for ever by default: a stalled client would keep Ctrl-C waiting).
SHUTDOWN_GRACE = 5
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


def _read_config(config: str | None) -> dict[str, Any]:
    """A distribution config file's top level; empty when there is none or it does not
    parse (parse_location reports a broken config properly)."""
    from regtool.yamldoc import YAMLError, load_yaml

    if not config:
        return {}
    try:
        doc: Any = load_yaml(Path(config).read_bytes())
    except (OSError, YAMLError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _config_addr(doc: dict[str, Any]) -> str | None:
    """`http.addr` of a distribution config, if it sets one."""
    http = doc.get("http")
    addr = http.get("addr") if isinstance(http, dict) else None
    return str(addr) if addr else None


def serve(
    location_arg: Annotated[
        str | None,
        typer.Argument(
            metavar="LOCATION", help="Where the storage is (as --location).", show_default=False
        ),
    ] = None,
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
        str,
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            help="uvicorn log level: critical, error, warning, info (shows each request), "
            "debug or trace.",
        ),
    ] = "info",
    shutdown_grace: Annotated[
        int,
        typer.Option(
            "--shutdown-timeout",
            metavar="SECONDS",
            min=0,
            help="On Ctrl-C, how long requests under way may take before they are cut "
            "short (an upload cut short stays resumable).",
        ),
    ] = SHUTDOWN_GRACE,
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
    """Serve the registry (OCI Distribution API) over HTTP or HTTPS; Ctrl-C stops it."""
    import uvicorn  # imported late: only serve needs it

    from regtool.server import tls
    from regtool.server.app import create_app
    from regtool.server.foreign_layers import UrlPolicy
    from regtool.server.protocol import uvicorn_options
    from regtool.server.settings import ServerSettings

    level = log_level.lower()
    if level not in LOG_LEVELS:
        raise UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")
    # regtool's own lines (a client gone mid-request, a lease lost) at the level asked for,
    # as uvicorn's: the CLI's root logger stops at warnings.
    logging.getLogger("regtool").setLevel("DEBUG" if level == "trace" else level.upper())
    doc = _read_config(config)
    host, port = parse_addr(addr or _config_addr(doc) or DEFAULT_ADDR)
    foreign_urls = UrlPolicy.from_config(doc.get("validation"))
    settings = ServerSettings.from_config(doc).with_flags(
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
    )
    if settings.tls is not None:
        tls.check(settings.tls)
    loc = parse_location(location_arg or location, config=config, identity=identity)
    driver = loc.open()
    try:
        driver.create_root()  # the embedded store's first run; a new Swift container
        app = create_app(driver, foreign_urls=foreign_urls, settings=settings, ui=not no_ui)
        sock = listen(host, port)
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if settings.tls else "http"
        typer.echo(f"regtool serve: listening on {scheme}://{shown}:{port}", err=True)
        typer.echo(f"regtool serve: storage {loc.redacted()} ({driver.name})", err=True)
        if not no_ui:
            typer.echo(f"regtool serve: web UI at {scheme}://{shown}:{port}/ui/", err=True)
        if settings.tls is None and not tls.is_loopback(host):
            typer.echo(
                f"regtool serve: warning: plain HTTP on {shown}:{port}, reachable from other "
                "hosts: anyone on the network path can read and change what crosses it, "
                "passwords and tokens included; serve TLS (--tls-cert, --tls-key) or put "
                "a TLS proxy in front",
                err=True,
            )
        uv_config = uvicorn.Config(
            app,
            log_level=level,
            access_log=True,
            **uvicorn_options(shutdown_grace),
            **tls.uvicorn_options(settings.tls),
        )
        tls.harden(uv_config, settings.tls)
        server = uvicorn.Server(uv_config)
        with sock, contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C
            server.run(sockets=[sock])
    finally:
        driver.close()


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
