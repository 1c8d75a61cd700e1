"""Turns what a request recorded (`events.record`) into events once it has succeeded."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from regtool.server.notifications.endpoint import Notifier
from regtool.server.notifications.events import new_id, stamp


class NotifyMiddleware:
    """Gives each HTTP request a list to `record` into; after a response below 400, its
    records go to `notifier` as events (queued: never waiting for delivery)."""

    def __init__(self, app: ASGIApp, notifier: Notifier):
        self.app = app
        self.notifier = notifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pending: list[tuple[str, object]] = []
        state = scope.setdefault("state", {})
        state["events"] = pending
        state["with_references"] = self.notifier.settings.include_references
        status = 500

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watching_send)
        if pending and status < 400:
            state.setdefault("request_id", new_id())  # one for all of the request's events
            source = self.notifier.source
            self.notifier.write([stamp(scope, a, t, source) for a, t in pending])  # type: ignore[arg-type]
