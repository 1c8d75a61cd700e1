"""The server's public face behind a path prefix and a proxy: `http.prefix`, `http.host`,
`http.relativeurls` and `http.headers` of distribution's configuration.

Handlers answer as if the registry sat at `/` of its own host: `Location: /v2/app/...`,
`Link: </v2/_catalog?...>`. `PublicUrls` (called by `request_life`) turns those into
what the client must use: the prefix put back, and (unless URLs are relative) the scheme
and host the client reached, as distribution's `NewURLBuilderFromRequest` finds them:
`http.host` when configured; else `X-Forwarded-Proto` (or `Forwarded: proto=`), the
connection's own scheme otherwise; `X-Forwarded-Host` (its first entry) or `Forwarded:
host=`, the request's `Host` otherwise. (distribution also takes `Forwarded: for=`, a
client address, as the host: regtool does not.)"""

from __future__ import annotations

import re

from starlette.responses import PlainTextResponse, Response
from starlette.types import Scope

from regtool.server.settings import HttpSettings

Headers = list[tuple[bytes, bytes]]

# One `key=value` pair of RFC 7239's Forwarded header (its first element), value quoted or not.
_FORWARDED_PAIR_RE = re.compile(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*')


def strip_prefix(scope: Scope, prefix: str) -> Scope | None:
    """The request's scope as the app sees it below `prefix` (`/registry/v2/...` reaches
    it as `/v2/...`); None for a path outside it, which is 404 (`outside_prefix`), as
    distribution's router with `http.prefix`."""
    path: str = scope["path"]
    if path != prefix and not path.startswith(prefix + "/"):
        return None
    inner = path[len(prefix) :] or "/"
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw.startswith(prefix.encode()):
        raw = raw[len(prefix) :] or b"/"
    # No `root_path`: Starlette's mounts (the web UI) match below it only when the
    # path still holds it; links under the prefix are the UI's to build.
    return {**scope, "path": inner, "raw_path": raw}


def outside_prefix() -> Response:
    """The answer to a path outside `http.prefix`."""
    return PlainTextResponse("404 page not found", 404)


class PublicUrls:
    """Turns `Location` and `Link` paths of an answer into the URLs the client must use
    (see the module's docstring), and adds `http.headers`."""

    def __init__(self, http: HttpSettings):
        self.http = http
        self.prefix = http.prefix.encode("latin-1")
        self.extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in http.headers]

    def rewrite(
        self, scope: Scope, headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """`headers` of the answer to the request of `scope`, made public."""
        root: bytes | None = None
        out = []
        for name, value in headers:
            if name == b"location" and value.startswith(b"/"):
                if root is None:  # where the client reached: only for answers that link
                    base = "" if self.http.relative_urls else (self.http.host or base_url(scope))
                    root = (base + self.http.prefix).encode("latin-1")
                value = root + value
            elif name == b"link" and value.startswith(b"</") and self.prefix:
                value = b"<" + self.prefix + value[1:]
            out.append((name, value))
        return out + self.extra if self.extra else out


def base_url(scope: Scope) -> str:
    """`scheme://host` the client reached, from the forwarding headers a proxy sets or
    the request itself (see the module's docstring)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    forwarded = forwarded_pairs(headers.get("forwarded", ""))
    scheme = (
        headers.get("x-forwarded-proto", "").split(",")[0].strip()
        or forwarded.get("proto")
        or scope.get("scheme", "http")
    )
    host = (
        headers.get("x-forwarded-host", "").split(",")[0].strip()
        or forwarded.get("host")
        or headers.get("host")
    )
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = f"{server[0]}:{server[1]}" if server[1] else str(server[0])
    if not re.fullmatch(r"https?", scheme, re.ASCII | re.IGNORECASE):
        scheme = "http"  # never echo a header's text as a scheme (`javascript`...)
    if not re.fullmatch(r"[A-Za-z0-9._:\[\]-]+", host, re.ASCII):
        host = headers.get("host") or "localhost"
    return f"{scheme.lower()}://{host}"


def forwarded_pairs(header: str) -> dict[str, str]:
    """The first element of an RFC 7239 `Forwarded` header (`for=...;proto=https;
    host=example.com`, the proxy nearest the client) as lower-case keys to values."""
    first = header.split(",", 1)[0]
    pairs = {}
    for part in first.split(";"):
        m = _FORWARDED_PAIR_RE.fullmatch(part)
        if m:
            value = m.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            pairs[m.group(1).lower()] = value
    return pairs


def unix_socket_client(scope: Scope) -> None:
    """On a Unix socket, which gives no peer address, the client is the last address
    of `X-Forwarded-For`: the one the proxy in front added (nginx's
    `$proxy_add_x_forwarded_for` or `$remote_addr`), not any the client sent before it.
    Sets `scope["client"]` (port 0); without the header the client stays unknown. Only
    a local process can reach the socket, as only the loopback proxy is believed on TCP
    (uvicorn's `forwarded_allow_ips`)."""
    if scope.get("client"):
        return
    forwarded = [v for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"]
    if forwarded:
        last = forwarded[-1].decode("latin-1").rpartition(",")[2].strip()
        if last:
            scope["client"] = (last, 0)
