"""The registry's ASGI app: `create_app(driver, layout)`.

Repository names contain slashes, so routes are matched here by regular expressions on
the path below `/v2/` (suffixes anchored at the end, as distribution's router does),
then the name is validated before any storage path is built from it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from regtool.errors import LayoutError
from regtool.layout.detect import default_layout, detect_layout
from regtool.layout.v2 import V2Layout
from regtool.oci import check_name
from regtool.server import blobs, manifests, uploads
from regtool.server.errors import RouteUnknown, Unsupported, classify, error_response
from regtool.server.http import API_VERSION, State
from regtool.server.registry import Registry
from regtool.server.upload_store import UploadStore
from regtool.storage.base import Driver

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Response]]

#: (pattern below /v2/, {method: handler}); the first match wins.
ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
    (re.compile(r"^_catalog$"), {"GET": manifests.catalog}),
    (re.compile(r"^(?P<name>.+)/tags/list$"), {"GET": manifests.tags_list}),
    (
        re.compile(r"^(?P<name>.+)/manifests/(?P<ref>[^/]+)$"),
        {
            "GET": manifests.get_manifest,
            "HEAD": manifests.get_manifest,
            "PUT": manifests.put_manifest,
            "DELETE": manifests.delete_manifest,
        },
    ),
    (re.compile(r"^(?P<name>.+)/blobs/uploads/?$"), {"POST": uploads.start_upload}),
    (
        re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)$"),
        {
            "GET": uploads.upload_status,
            "PATCH": uploads.patch_upload,
            "PUT": uploads.put_upload,
            "DELETE": uploads.cancel_upload,
        },
    ),
    (
        re.compile(r"^(?P<name>.+)/blobs/(?P<digest>[^/]+)$"),
        {"GET": blobs.get_blob, "HEAD": blobs.get_blob, "DELETE": blobs.delete_blob},
    ),
    (re.compile(r"^(?P<name>.+)/referrers/(?P<digest>[^/]+)$"), {"GET": manifests.referrers}),
]


async def version_check(request: Request) -> Response:
    return JSONResponse({})


async def dispatch(request: Request) -> Response:
    rest = request.path_params["rest"]
    try:
        for pattern, methods in ROUTES:
            m = pattern.match(rest)
            if m is None:
                continue
            handler = methods.get(request.method)
            if handler is None:
                raise Unsupported(f"{request.method} is not supported here")
            args: dict[str, Any] = m.groupdict()
            if "name" in args:
                check_name(args["name"])
            return await handler(request, *args.values())
        raise RouteUnknown(f"no endpoint at /v2/{rest[:200]}")
    except Exception as e:
        if classify(e)[1] >= 500:
            log.exception("%s %s failed", request.method, request.url.path)
        return error_response(e)


class ApiVersionHeader:
    """Adds `Docker-Distribution-API-Version` to every response, errors included."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                name, value = API_VERSION
                message.setdefault("headers", []).append((name.lower().encode(), value.encode()))
            await send(message)

        await self.app(scope, receive, send_with_header)


def create_app(driver: Driver, layout: V2Layout | None = None) -> ASGIApp:
    """The registry over `driver`; the layout is detected (a new store gets
    distribution's naming for the backend) unless given."""
    if layout is None:
        found = detect_layout(driver)
        if not isinstance(found, V2Layout):
            raise LayoutError(f"{driver.describe()} holds a V1 registry: serve needs V2")
        layout = found
    app = Starlette(
        routes=[
            Route("/v2/", version_check, methods=["GET", "HEAD"]),
            Route("/v2", version_check, methods=["GET", "HEAD"]),
            Route(
                "/v2/{rest:path}",
                dispatch,
                methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            ),
        ]
    )
    app.state.registry_state = State(Registry(layout), UploadStore(layout))
    return ApiVersionHeader(app)


__all__ = ["create_app", "default_layout"]
