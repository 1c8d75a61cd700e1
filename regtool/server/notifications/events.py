"""distribution's notification events (`notifications/event.go`, `bridge.go` at
release/2.8): what a request did to a manifest or blob, with who asked and which
registry answered. `to_json` gives the JSON distribution writes for one event; an
envelope (`envelope`) carries a list of them as `application/vnd.docker.distribution.
events.v1+json`.

Which requests make events, as distribution's listeners make them:
- push: a manifest PUT (with its tag, if by tag); a blob upload completed (PUT, or a
  monolithic POST);
- pull: a manifest GET or HEAD (with its tag); a blob GET or HEAD;
- mount: a blob mounted from another repository (`fromRepository`);
- delete: a manifest by digest, a tag, a blob link.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from regtool.errors import ManifestInvalid
from regtool.oci import parse_manifest

EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
#: The media type distribution gives a blob's descriptor in its events.
BLOB_MEDIA_TYPE = "application/octet-stream"


#: Event and request ids: UUID-shaped, a random prefix per process and a counter (a
#: uuid4 each costs a system call in the request's path).
_PREFIX = str(uuid.uuid4())[:24]
_COUNTER = itertools.count()


def new_id() -> str:
    """An id no other event of any process has (random prefix, then a counter)."""
    return f"{_PREFIX}{next(_COUNTER) % (1 << 48):012x}"


@dataclass(frozen=True, slots=True)
class Target:
    """What an event is about. `kind` ("manifests" or "blobs") builds its `url`; a
    delete names only what the request named (`digest` or `tag`)."""

    kind: str
    repository: str
    digest: str | None = None
    media_type: str | None = None
    size: int | None = None
    tag: str | None = None
    from_repository: str | None = None
    #: what a manifest references (`notifications.events.includereferences`)
    references: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Event:
    """One event: its `action` on `target`, and the request that made it."""

    action: str
    target: Target
    timestamp: float  # Unix seconds: formatted only when sent
    request_id: str
    addr: str
    host: str
    method: str
    user_agent: str
    actor: str | None
    scheme: str = "http"
    source: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=new_id)

    def to_json(self) -> dict[str, Any]:
        """The event as distribution's `Event` marshals it (empty fields left out)."""
        t = self.target
        target: dict[str, Any] = {}
        if t.media_type and self.action != "delete":
            target["mediaType"] = t.media_type
        if t.size and self.action != "delete":
            target["size"] = t.size
        if t.digest:
            target["digest"] = t.digest
        if t.size and self.action != "delete":
            target["length"] = t.size
        target["repository"] = t.repository
        if t.from_repository:
            target["fromRepository"] = t.from_repository
        if t.digest and self.action != "delete":
            target["url"] = f"{self.scheme}://{self.host}/v2/{t.repository}/{t.kind}/{t.digest}"
        if t.tag:
            target["tag"] = t.tag
        if t.references:
            target["references"] = list(t.references)
        request = {
            "id": self.request_id,
            "addr": self.addr,
            "host": self.host,
            "method": self.method,
            "useragent": self.user_agent,
        }
        return {
            "id": self.id,
            "timestamp": _rfc3339(self.timestamp),
            "action": self.action,
            "target": target,
            "request": request,
            "actor": {"name": self.actor} if self.actor else {},
            "source": self.source,
        }


_second: tuple[int, str] = (-1, "")


def _rfc3339(timestamp: float) -> str:
    """`timestamp` (Unix seconds) as distribution writes an event's time, in UTC with
    microseconds (`2006-01-02T15:04:05.000000Z`); the date and time of day made once a
    second (strftime was a third of an event's encoding)."""
    global _second
    second = int(timestamp)
    micro = round((timestamp - second) * 1_000_000)  # rounded as datetime rounds it
    if micro == 1_000_000:
        second, micro = second + 1, 0
    if _second[0] != second:
        _second = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{_second[1]}.{micro:06d}Z"


def envelope(events: list[Event]) -> bytes:
    """The body of one POST: `{"events": [...]}`."""
    return json.dumps({"events": [e.to_json() for e in events]}).encode()


def record(request: Request, action: str, target: Target, manifest: bytes | None = None) -> None:
    """Note that `request` did `action` to `target`; it becomes an event if the request
    succeeds. Nothing when no endpoint listens (no list in the request's state). The
    `manifest` a manifest event is about gives the target's `references` when endpoints
    ask for them (`with_references` in the request's state)."""
    state = request.scope.get("state", {})
    pending = state.get("events")
    if pending is None:
        return
    if manifest is not None and state.get("with_references"):
        target = dataclasses.replace(target, references=references(manifest))
    pending.append((action, target))


def references(manifest: bytes) -> tuple[dict[str, Any], ...]:
    """The descriptors a manifest references, as distribution's `References()`: an
    image's config then its layers, an index's manifests; none if it does not parse."""
    try:
        parsed = parse_manifest(manifest)
    except ManifestInvalid:
        return ()
    found = []
    for d in parsed.manifests if parsed.is_index else parsed.blobs:
        desc: dict[str, Any] = {"mediaType": d.media_type, "size": d.size, "digest": str(d.digest)}
        if d.urls:
            desc["urls"] = list(d.urls)
        found.append(desc)
    return tuple(found)


def stamp(
    scope: MutableMapping[str, Any], action: str, target: Target, source: dict[str, str]
) -> Event:
    """The event for `action` on `target` by the HTTP request of `scope`. Runs in the
    request's path: only what the request alone can tell is taken here."""
    host = agent = ""
    for key, value in scope.get("headers", ()):
        if key == b"host":
            host = value.decode("latin-1")
        elif key == b"user-agent":
            agent = value.decode("latin-1")
    client = scope.get("client")
    user = scope.get("user")
    actor = user.display_name if user is not None and user.is_authenticated else None
    request_id = scope.get("state", {}).get("request_id") or new_id()
    return Event(
        action,
        target,
        time.time(),
        request_id,
        f"{client[0]}:{client[1]}" if client else "",
        host,
        scope.get("method", ""),
        agent,
        actor,
        "https" if scope.get("scheme") == "https" else "http",
        source,
    )
