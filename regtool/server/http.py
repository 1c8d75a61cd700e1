"""Small HTTP helpers shared by the handlers: the per-app state, worker-thread calls,
streaming a request body into storage, pagination."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from anyio import to_thread
from starlette.requests import Request

from regtool.oci import Digest
from regtool.server.errors import DigestMismatch, PaginationInvalid
from regtool.server.registry import Registry
from regtool.server.upload_store import Appender, UploadStore

T = TypeVar("T")

#: Bytes handed to a worker thread per write, and read per chunk when serving blobs.
IO_CHUNK = 1 << 20
API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")


@dataclass
class State:
    registry: Registry
    uploads: UploadStore


def state(request: Request) -> State:
    return request.app.state.registry_state  # type: ignore[no-any-return]


async def run(fn: Callable[..., T], *args: Any) -> T:
    """Blocking storage calls always run in a worker thread."""
    return await to_thread.run_sync(fn, *args)


def parse_digest(text: str | None) -> Digest:
    if not text:
        raise DigestMismatch("digest missing")
    return Digest.parse(text)


async def pump(
    request: Request, open_appender: Callable[[], Awaitable[Appender]]
) -> Appender | None:
    """Stream the request body into an appender opened at the first byte (None if the
    body is empty), committing it at the end. Bytes are gathered to `IO_CHUNK` and
    written in a worker thread while the next chunk is received; at most two chunks are
    held in memory. On any failure what this request wrote is cancelled."""
    appender: Appender | None = None
    buf = bytearray()
    pending: asyncio.Task[None] | None = None
    try:
        async for chunk in request.stream():
            if not chunk:
                continue
            if appender is None:
                appender = await open_appender()
            buf += chunk
            if len(buf) >= IO_CHUNK:
                data = bytes(buf)
                buf.clear()
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(run(appender.write, data))
        if pending is not None:
            await pending
            pending = None
        if appender is not None:
            if buf:
                await run(appender.write, bytes(buf))
            await run(appender.commit)
    except BaseException:
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)
        if appender is not None:
            await run(appender.cancel)
        raise
    return appender


def paginate(
    items: list[str], request: Request, default_n: int | None = None
) -> tuple[list[str], str | None]:
    """`n` and `last` as distribution takes them; returns the page and the `Link`
    header value for the next page, if there is one."""
    text = request.query_params.get("n")
    n = default_n
    if text is not None and text != "":
        try:
            n = int(text)
        except ValueError:
            raise PaginationInvalid(f"n must be a number, not {text[:20]!r}") from None
        if n < 0:
            raise PaginationInvalid("n must not be negative")
    last = request.query_params.get("last")
    if last:
        items = [i for i in items if i > last]
    if n is None or len(items) <= n:
        return items, None
    page = items[:n]
    if not page:
        return page, None
    query = urlencode({"last": page[-1], "n": n})
    return page, f'<{request.url.path}?{query}>; rel="next"'
