"""A request's events: what it records (`events.record`) becomes events once it has
succeeded. Called by `request_life` around each request."""

from __future__ import annotations

from typing import Any

from starlette.types import Scope

from regtool.server.notifications.endpoint import Notifier
from regtool.server.notifications.events import Target, stamp

#: What a request recorded: (action, target) pairs.
Records = list[tuple[str, Target]]


def begin(state: dict[str, Any], notifier: Notifier | None) -> Records | None:
    """Give a request (its `scope["state"]`) a list to `record` into; None (nothing
    recorded) when no endpoint listens."""
    if notifier is None:
        return None
    pending: Records = []
    state["events"] = pending
    state["with_references"] = notifier.settings.include_references
    return pending


def finish(scope: Scope, pending: Records, notifier: Notifier | None) -> None:
    """As a response below 400 ends (before its last byte is sent): the request's
    records go to `notifier` as events (queued: never waiting for delivery), all with
    the request's id."""
    if pending and notifier is not None:
        source = notifier.source
        notifier.write([stamp(scope, action, target, source) for action, target in pending])
