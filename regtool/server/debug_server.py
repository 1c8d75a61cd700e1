"""The debug listener (`http.debug.addr`), as distribution's: `/debug/health` (storage
health: 200 with `{}`, 503 with `{check: reason}`), the Prometheus metrics at
`http.debug.prometheus.path` when enabled, and its own `/` (200: the listener is up).
It runs on uvicorn in a thread of its own, so a busy registry does not delay a scrape."""

from __future__ import annotations

import socket
import threading

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from regtool.server.operations import Operations


def debug_app(ops: Operations) -> Starlette:
    """The debug listener's ASGI app over `ops`."""

    async def root(request: Request) -> Response:
        paths = ["/debug/health"] + ([ops.debug.prometheus_path] if ops.metrics else [])
        return PlainTextResponse("regtool serve debug listener: " + " ".join(paths) + "\n")

    async def health(request: Request) -> Response:
        status, body = ops.health.body()
        return Response(body, status, media_type="application/json; charset=utf-8")

    routes = [Route("/", root), Route("/debug/health", health)]
    if ops.metrics is not None:
        metrics = ops.metrics

        async def scrape(request: Request) -> Response:
            body, content_type = metrics.exposition()
            return Response(body, headers={"Content-Type": content_type})

        routes.append(Route(ops.debug.prometheus_path, scrape))
    return Starlette(routes=routes)


class DebugServer:
    """The debug app served on `sock` in a daemon thread until `close`."""

    def __init__(self, ops: Operations, sock: socket.socket):
        config = uvicorn.Config(
            debug_app(ops),
            log_level="warning",
            log_config=None,  # uvicorn's own would take its loggers from the server's format
            access_log=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.sock = sock
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name="debug-server", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.sock.close()
