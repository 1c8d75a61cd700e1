"""The life of each HTTP request around the registry's app, in one ASGI layer: the scope
read once, `send` (and, with metrics, `receive`) wrapped once. In order:

- on a Unix socket, the client from `X-Forwarded-For` (`proxy.unix_socket_client`);
- its id (`access_log.request_id`, `X-Request-Id` on the answer, the id of its events);
- `http.prefix`: a path outside it is 404, a path inside reaches the app without it
  (`proxy.strip_prefix`);
- metrics (`metrics.Metrics.count_request`): requests in progress, then status, route,
  latency and body bytes each way, counted as the answer's last byte goes out;
- notifications (`notifications.request_events`): what the request records becomes
  events when its answer ends below 400, queued before the answer's last byte goes out;
- the health gate (`health.gate`): 503 while a check fails, `/` for load balancers;
- the app's answer, with `Docker-Distribution-API-Version`, its `Location` and `Link`
  made public and `http.headers` added (`proxy.PublicUrls`); a request that cannot end
  normally ends with one line in the log, without a traceback (see `RequestLife.__call__`);
- one access line when it is over (`access_log.log_access`).

Each feature's logic lives in its own module; this layer only calls them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from regtool.errors import RegtoolError
from regtool.server.access_log import log_access, request_id
from regtool.server.errors import ShuttingDown, error_response
from regtool.server.health import gate
from regtool.server.http import API_VERSION
from regtool.server.notifications.events import new_id
from regtool.server.notifications.request_events import Records, begin, finish
from regtool.server.operations import Operations
from regtool.server.proxy import PublicUrls, outside_prefix, strip_prefix, unix_socket_client
from regtool.server.settings import ServerSettings

log = logging.getLogger("regtool.server.app")

_API_VERSION_HEADER = (API_VERSION[0].lower().encode(), API_VERSION[1].encode())


class RequestLife:
    """`app` as clients reach it, operated as `settings` and `ops` say (see the module's
    docstring)."""

    def __init__(self, app: ASGIApp, settings: ServerSettings, ops: Operations):
        self.app = app
        self.prefix = settings.http.prefix
        self.urls = PublicUrls(settings.http)
        self.access_log = settings.log.access_log
        self.metrics = ops.metrics
        self.notifier = ops.notifier
        self.health = ops.health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        unix_socket_client(scope)  # the login throttle, logs and events name the client
        rid = new_id()
        token = request_id.set(rid)
        started = time.perf_counter()
        status = sent = received = 0
        rid_header = (b"x-request-id", rid.encode())
        urls = self.urls
        inner: Scope | None = scope
        api = True  # the registry's answers carry the API version; the gate's do not
        events: Records | None = None
        metrics = self.metrics
        state: dict[str, object] = {}
        in_progress = False  # counted in progress, not yet counted as done

        def count_done() -> None:
            nonlocal in_progress
            if metrics is None or not in_progress or inner is None:
                return
            in_progress = False
            metrics.requests_in_progress -= 1
            metrics.count_request(
                inner["method"],
                str(state.get("route", "other")),
                status or 500,  # a request that ends without an answer failed
                time.perf_counter() - started,
                received,
                sent,
            )

        async def life_send(message: Message) -> None:
            nonlocal status, sent, events
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if inner is not None:  # outside the prefix: only the request id
                    if api:
                        headers.append(_API_VERSION_HEADER)
                    headers = urls.rewrite(inner, headers)
                headers.append(rid_header)
                message["headers"] = headers
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                if not message.get("more_body", False):
                    # Counted and queued before the answer ends: a client that has its
                    # answer can scrape the metrics or send its next request, whose
                    # events must come after these.
                    count_done()
                    if events is not None and status < 400 and inner is not None:
                        finish(inner, events, self.notifier)
                    events = None
            await send(message)

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        try:
            if self.prefix:
                inner = strip_prefix(scope, self.prefix)
            if inner is None:
                await outside_prefix()(scope, receive, life_send)
                return
            if metrics is not None:
                metrics.requests_in_progress += 1
                in_progress = True
            state = inner.setdefault("state", {})
            state["request_id"] = rid
            events = begin(state, self.notifier)
            try:
                answer = gate(self.health, inner)
                if answer is not None:
                    api = False
                    await answer(inner, receive, life_send)
                else:
                    counted = receive if metrics is None else counting_receive
                    ended = await self._answer(inner, counted, life_send, lambda: status != 0)
                    if ended and events is not None and status < 400:
                        # an answer whose last message never went out, its app ending
                        # normally: the client left once it had the body
                        finish(inner, events, self.notifier)
            finally:
                count_done()  # if its answer never ended
        finally:
            if self.access_log:
                log_access(scope, status, sent, time.perf_counter() - started)
            request_id.reset(token)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, started: Callable[[], bool]
    ) -> bool:
        """The app's answer; True if the app ended normally. A request that cannot end
        normally ends with one line in the log where uvicorn would print a traceback:

        - cancelled, because the server is stopping and its grace period ran out (what
          the request wrote was taken away, its lease released, on the way out):
          answered 503 if nothing was sent yet, without reading more of its body;
        - failed after its answer started (a blob whose read from storage failed or
          came up short): the connection is closed short of the length announced,
          which is how HTTP tells the client that the body is incomplete (uvicorn adds
          a line saying the response was not completed).

        Everything else was answered by the app (`app.dispatch`) already. `started()`
        tells whether the answer started."""
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            log.warning("%s %s cut short: the server is stopping", scope["method"], scope["path"])
            if not started():
                answer = error_response(ShuttingDown("the server is stopping"))
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await answer(scope, receive, send)
        except Exception as e:
            if not started():
                raise  # not answered at all: a bug, which uvicorn reports with its traceback
            what = f"{scope['method']} {scope['path']}"
            if isinstance(e, RegtoolError):
                log.error("%s failed while answering: %s", what, e)
            else:
                log.exception("%s failed while answering", what)
        else:
            return True
        return False
