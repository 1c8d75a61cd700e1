"""The registry's ASGI app: `create_app(driver, layout)`.

Repository names contain slashes, so routes are matched here by regular expressions on
the path below `/v2/` (suffixes at the end, as distribution's router does), then the name
is validated before any storage path is built from it. Paths are matched whole
(`fullmatch`, `re.DOTALL`): a newline in a request path (`%0A`) is part of a name or
reference and makes it invalid, never an end of the text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import URLPath
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from regtool.errors import LayoutError, RegtoolError
from regtool.layout.detect import default_layout, detect_layout
from regtool.layout.v2 import V2Layout
from regtool.oci import check_name
from regtool.server import blobs, manifests, uploads
from regtool.server.auth.access import Access, needed
from regtool.server.auth.guard import Guard
from regtool.server.errors import RouteUnknown, Unsupported, classify, error_response
from regtool.server.foreign_layers import UrlPolicy
from regtool.server.http import State, guard
from regtool.server.metrics import set_route
from regtool.server.operations import Operations
from regtool.server.registry import Registry
from regtool.server.request_life import RequestLife
from regtool.server.search import ping, search
from regtool.server.settings import ServerSettings
from regtool.server.upload_store import UploadStore
from regtool.storage.base import Driver

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Response]]


def _route(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII | re.DOTALL)


async def version_check(request: Request) -> Response:
    return JSONResponse({})


#: (route, pattern for the path below /v2/, {method: handler}); the first match wins. The
#: route names what the access rules and token scopes see (`auth.access.needed`).
ROUTES: list[tuple[str, re.Pattern[str], dict[str, Handler]]] = [
    ("base", _route(r""), {"GET": version_check, "HEAD": version_check}),
    ("catalog", _route(r"_catalog"), {"GET": manifests.catalog}),
    ("tags", _route(r"(?P<name>.+)/tags/list"), {"GET": manifests.tags_list}),
    (
        "manifests",
        _route(r"(?P<name>.+)/manifests/(?P<ref>[^/]+)"),
        {
            "GET": manifests.get_manifest,
            "HEAD": manifests.get_manifest,
            "PUT": manifests.put_manifest,
            "DELETE": manifests.delete_manifest,
        },
    ),
    ("uploads", _route(r"(?P<name>.+)/blobs/uploads/?"), {"POST": uploads.start_upload}),
    (
        "uploads",
        _route(r"(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)"),
        {
            "GET": uploads.upload_status,
            "HEAD": uploads.upload_status,
            "PATCH": uploads.patch_upload,
            "PUT": uploads.put_upload,
            "DELETE": uploads.cancel_upload,
        },
    ),
    (
        "blobs",
        _route(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)"),
        {"GET": blobs.get_blob, "HEAD": blobs.get_blob, "DELETE": blobs.delete_blob},
    ),
    (
        "referrers",
        _route(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)"),
        {"GET": manifests.referrers},
    ),
]


#: The status for a request whose client went away before its body ended (nginx's):
#: shown in no answer, only in what logs it.
CLIENT_CLOSED_REQUEST = 499


def match_route(rest: str) -> tuple[str, dict[str, Handler], dict[str, Any]] | None:
    """The route, its handlers by method and the path's arguments for `/v2/<rest>`;
    None when no route matches. `NameInvalid` for a repository name that is not one."""
    for route, pattern, methods in ROUTES:
        m = pattern.fullmatch(rest)
        if m is None:
            continue
        args: dict[str, Any] = m.groupdict()
        if "name" in args:
            check_name(args["name"])
        return route, methods, args
    return None


async def dispatch(request: Request, rest: str) -> Response:
    """Answer a request for `/v2/<rest>` (`rest` as decoded from the URL)."""
    try:
        matched = match_route(rest)
        if matched is None:
            raise RouteUnknown(f"no endpoint at /v2/{rest[:200]}")
        route, methods, args = matched
        set_route(request.scope, route)
        # Who asks comes first, as in distribution: a method the route lacks is
        # answered (405, with what it has) only to whom may use the route.
        guard(request).check(request, _needed(request, route, args.get("name")), list(methods))
        handler = methods.get(request.method)
        if handler is None:
            raise Unsupported(f"{request.method} is not supported here", list(methods))
        return await handler(request, *args.values())
    except ClientDisconnect:  # a normal event: what the request wrote was taken away
        log.info(
            "%s %s: the client disconnected before the end of its request",
            request.method,
            request.url.path,
        )
        return Response(status_code=CLIENT_CLOSED_REQUEST)  # nobody left to read it
    except Exception as e:
        if classify(e)[1] >= 500:
            if isinstance(e, RegtoolError):  # expected (storage full, unreachable...): one line
                log.error("%s %s failed: %s", request.method, request.url.path, e)
            else:  # a bug: the traceback is what finds it
                log.exception("%s %s failed", request.method, request.url.path)
        return error_response(e)


def wanted_by(conn: HTTPConnection) -> list[Access]:
    """What a request needs (`access.needed`), told from its method and path alone; []
    where that cannot be told (no route, an invalid name): the token challenge of a
    request refused before routing names it as its scope."""
    path = conn.scope["path"]
    if not path.startswith("/v2/"):
        return []
    try:
        matched = match_route(path[len("/v2/") :])
        if matched is None:
            return []
        route, _, args = matched
        return _needed(conn, route, args.get("name"))
    except RegtoolError:
        return []


def _needed(request: HTTPConnection, route: str, name: str | None) -> list[Access]:
    """What the request needs (`access.needed`); a mount's `from` is checked as a name
    first, so a malformed one is refused as the mount itself would refuse it."""
    source = None
    if route == "uploads" and request.scope["method"] == "POST":
        mount, source = request.query_params.get("mount"), request.query_params.get("from")
        source = check_name(source) if mount and source else None
    return needed(request.scope["method"], name, route, source)


class RegistryRoute(BaseRoute):
    """`/v2` and everything below it, matched by prefix: Starlette's path patterns end at
    a newline (`.*` and `$`), which would cut `v1%0A` down to `v1`."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope["path"] if scope["type"] == "http" else ""
        if path == "/v2" or path.startswith("/v2/"):
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await dispatch(request, scope["path"][len("/v2/") :])
        await response(scope, receive, send)


#: Most of an unread request body read (and dropped) before an early answer, as Go's
#: net/http does for distribution (`maxPostHandlerReadBytes`).
DRAIN_LIMIT = 256 << 10


class DrainUnreadBody:
    """Before an answer goes out while the request's body is still coming (a refusal
    found from the headers alone: an unknown or busy upload, a bad Content-Range...),
    reads up to `DRAIN_LIMIT` bytes of the rest and drops them. A server that closes a
    connection with unread data resets it, and the client (which sends its whole body
    before it reads) sees a broken pipe instead of the answer. A client that waits for
    `100 Continue` has sent nothing: it gets its answer at once."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        unread: int | None = int(declared) if declared.isdigit() else None  # h11/httptools
        done = unread == 0 or (unread is None and b"transfer-encoding" not in headers)
        if done:  # no body (a GET, a HEAD): nothing to wait for
            await self.app(scope, receive, send)
            return
        asked = b"100-continue" not in headers.get(b"expect", b"").lower()

        async def tracking_receive() -> Message:
            nonlocal done, asked, unread
            asked = True
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            elif unread is not None:
                unread -= len(message.get("body", b""))
            return message

        async def draining_send(message: Message) -> None:
            early = message["type"] == "http.response.start" and not done and asked
            if early and (unread is None or unread <= DRAIN_LIMIT):
                dropped = 0
                while not done and dropped <= DRAIN_LIMIT:
                    dropped += len((await tracking_receive()).get("body", b""))
            await send(message)

        await self.app(scope, tracking_receive, draining_send)


def create_app(
    driver: Driver,
    layout: V2Layout | None = None,
    uploads: UploadStore | None = None,
    foreign_urls: UrlPolicy | None = None,
    settings: ServerSettings | None = None,
    guard: Guard | None = None,
    ops: Operations | None = None,
    ui: bool = True,
) -> ASGIApp:
    """The registry over `driver`; the layout is detected (a new store gets
    distribution's naming for the backend) unless given. `uploads` replaces the default
    upload store (its lease terms, its hash states); `foreign_urls` says which layer URLs
    a pushed manifest may list (by default none, as distribution); `settings` who may do
    what (by default anyone anything), or `guard` built from them already (a test's,
    with its own login throttle). `ops`: metrics, health, notifications and purging
    around it (`Operations`; by default none), which count the storage calls of the
    driver the layout is detected on here. `ui`: serve the web UI at `/ui/` (`web_ui`).
    `UsageError` when a file the settings name cannot be used."""
    ops = ops or Operations()
    if layout is None:
        driver = ops.observe(driver)
        found = detect_layout(driver)
        if not isinstance(found, V2Layout):
            raise LayoutError(f"{driver.describe()} holds a V1 registry: serve needs V2")
        layout = found
    settings = settings or ServerSettings()
    gate = guard or Guard(settings)
    routes: list[BaseRoute] = [
        RegistryRoute(),
        Route("/v1/search", search),
        Route("/v1/_ping", ping),
    ]
    app = Starlette(routes=[*routes, *(web_ui(layout, gate, settings.http.prefix) if ui else [])])
    registry = Registry(layout, foreign_urls=foreign_urls, record_pulls=not settings.read_only)
    upload_store = uploads or UploadStore(layout)
    app.state.registry_state = State(
        registry, upload_store, ops.metrics, settings.catalog_max_entries
    )
    ops.bind(layout.driver, upload_store, registry.facts)
    gate.wanted_by = wanted_by
    app.state.guard = gate
    return RequestLife(DrainUnreadBody(gate.middleware(app)), settings, ops)


def web_ui(layout: V2Layout, gate: Guard, http_prefix: str) -> list[BaseRoute]:
    """The web UI's routes (`/ui/`, and `/` sending browsers there), reading the same
    store under the same guard as the API, linking under `http_prefix`."""
    from regtool.ui.app import ui_routes  # imported late: jinja2 only when the UI runs
    from regtool.ui.data import StoreView

    return ui_routes(StoreView(layout, layout.driver.describe()), gate, http_prefix=http_prefix)


__all__ = ["create_app", "default_layout"]
