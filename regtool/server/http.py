"""Small HTTP helpers shared by the handlers: the per-app state, worker-thread calls,
numbers and digests from requests, pagination."""

from __future__ import annotations

import asyncio
import contextvars
import re
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request

from regtool.oci import Digest
from regtool.server.auth.guard import Guard
from regtool.server.errors import DigestMismatch, PaginationInvalid
from regtool.server.metrics import Metrics
from regtool.server.registry import Registry
from regtool.server.upload_store import UploadStore

T = TypeVar("T")

#: Bytes handed to a worker thread per write, and read per chunk when serving blobs.
IO_CHUNK = 1 << 20
API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")

# A decimal number as HTTP and distribution's strconv.Atoi take it: ASCII digits only
# (Python's int() also takes other scripts' digits, `_` and spaces), matched whole;
# 18 digits at most, so that it fits Go's int64 as distribution's does.
_NUMBER_RE = re.compile(r"[0-9]{1,18}", re.ASCII)
_SIGNED_RE = re.compile(r"[+-]?[0-9]{1,18}", re.ASCII)


@dataclass
class State:
    registry: Registry
    uploads: UploadStore
    metrics: Metrics | None = None  # counts uploads in progress when there are metrics
    #: The largest `n` a `_catalog` request may ask (`catalog.maxentries`).
    catalog_max_entries: int = 1000


def state(request: Request) -> State:
    return request.app.state.registry_state  # type: ignore[no-any-return]


def guard(request: Request) -> Guard:
    """Who may do what on this app (`auth.guard`)."""
    return request.app.state.guard  # type: ignore[no-any-return]


#: Worker threads for blocking storage calls (anyio's default limit): a store with
#: latency (Swift, SFTP) keeps that many calls in flight.
WORKER_THREADS = 40
_executors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ThreadPoolExecutor] = (
    weakref.WeakKeyDictionary()
)


def _executor(loop: asyncio.AbstractEventLoop) -> ThreadPoolExecutor:
    """The loop's default executor, made `WORKER_THREADS` wide on first use: the loop's
    closing waits for its default executor (`run`)."""
    executor = _executors.get(loop)
    if executor is None:
        executor = _executors[loop] = ThreadPoolExecutor(WORKER_THREADS, "regtool-storage")
        loop.set_default_executor(executor)
    return executor


async def run(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a worker thread (blocking storage calls always run there), in the
    request's context: its lines carry its request id. A call runs to its end: when the
    request is cancelled meanwhile (its client went, the server stops), the call goes on
    in its thread and the request waits for it before the cancellation goes on, as
    anyio's `to_thread.run_sync` (which this replaces: it costs twice the CPU a call)
    does. So a clean-up (taking a request's bytes away, releasing its upload lease) never
    stops half-way. A server that stops cancels the requests that outlast its grace
    period, then, closing its event loop, every task left once more; the loop's closing
    waits for its default executor, which runs these calls, so the process never exits
    before they end."""
    loop = asyncio.get_running_loop()
    call = loop.run_in_executor(_executor(loop), partial(contextvars.copy_context().run, fn, *args))
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        if call.cancelled():  # the loop itself is closing: the thread still ends
            raise
    while True:  # cancelled while the call goes on: its end first
        try:
            await asyncio.shield(call)
        except asyncio.CancelledError:
            if call.cancelled():
                raise
            continue
        except Exception:  # the call's own failure: the cancellation is what goes on
            pass
        raise asyncio.CancelledError


#: `run`, named where a clean-up relies on running to its end.
run_to_the_end = run


def catalog_page_size(request: Request, default_n: int, max_entries: int) -> int:
    """The number of repositories a `_catalog` page holds, as distribution 2.8.2 tells
    it (`registry/handlers/catalog.go`): the query's `n` if it is a number from 0 to
    `max_entries`, `PaginationInvalid` (with `{"n": n}`) past it, `default_n` for
    anything else (none, negative, not a number); never more than `max_entries`."""
    text = request.query_params.get("n") or ""
    n = default_n
    if _SIGNED_RE.fullmatch(text):
        asked = int(text)
        if asked > max_entries:
            raise PaginationInvalid(
                f"n must be at most {max_entries} (catalog.maxentries)", {"n": asked}
            )
        if asked >= 0:
            n = asked
    return min(n, max_entries)


def parse_number(text: str) -> int | None:
    """A non-negative decimal number (`Content-Length`, a range bound); None otherwise."""
    return int(text) if _NUMBER_RE.fullmatch(text) else None


def parse_digest(text: str | None) -> Digest:
    if not text:
        raise DigestMismatch("digest missing")
    return Digest.parse(text)


def paginate(
    items: list[str],
    request: Request,
    default_n: int | None = None,
    after: Callable[[str, str], bool] = str.__gt__,
    n: int | None = None,
) -> tuple[list[str], str | None]:
    """`n` and `last` as distribution takes them: `items` (in the order distribution
    lists them) after `last` by `after(item, last)`, at most `n` of them (the query's
    `n`, unless the caller decided it). Returns the page and the `Link` header value for
    the next page, if there is one."""
    text = request.query_params.get("n")
    if n is not None:
        pass
    elif text is not None and text != "":
        if not _SIGNED_RE.fullmatch(text):
            raise PaginationInvalid(f"n must be a number, not {text[:20]!r}")
        n = int(text)
        if n < 0:
            raise PaginationInvalid("n must not be negative")
    else:
        n = default_n
    last = request.query_params.get("last")
    if last:
        items = [i for i in items if after(i, last)]
    if n is None or len(items) <= n:
        return items, None
    page = items[:n]
    if not page:
        return page, None
    query = urlencode({"last": page[-1], "n": n})
    return page, f'<{request.url.path}?{query}>; rel="next"'
