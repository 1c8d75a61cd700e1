"""`/v2/<name>/blobs/<digest>`: GET and HEAD (one range at most), DELETE."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from functools import partial
from typing import BinaryIO

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from regtool.errors import StorageError
from regtool.oci import Digest
from regtool.server.errors import ApiError
from regtool.server.http import IO_CHUNK, parse_digest, run, state
from regtool.server.notifications.events import BLOB_MEDIA_TYPE, Target, record

# One `bytes=` range (RFC 9110 14.1.2): ASCII digits (18 at most, as distribution's
# int64), matched whole; the unit is case-insensitive.
_RANGE_RE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})", re.ASCII | re.IGNORECASE)


class RangeNotSatisfiable(ApiError):
    """A Range header this blob cannot satisfy: 416 with `Content-Range: bytes */size`."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single `bytes=` range of a blob of `size` bytes; None
    to send all of it. Malformed or multi-range headers are ignored, as RFC 9110 allows;
    `RangeNotSatisfiable` when the range lies past the end (14.1.1)."""
    if not header:
        return None
    m = _RANGE_RE.fullmatch(header.strip(" \t"))
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable()
        if size == 0:
            return None  # no byte to send: the whole (empty) blob, not a 206
        return max(size - n, 0), size - 1
    start = int(first)
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable()  # as Go's http.ServeContent, which distribution uses
    end = min(int(last), size - 1) if last else size - 1
    return start, end


async def _stream(
    open_reader: Callable[[], BinaryIO], length: int, what: str
) -> AsyncIterator[bytes]:
    """The `length` bytes `open_reader` gives. Fewer (the blob went, or was cut short
    meanwhile: replaced by a push of the bytes it lacked, say) is a `StorageError`
    rather than an answer that ends early as if it were whole."""
    # Opened here, not before the response: a client gone before the first byte leaves
    # no reader open. The blob was stat'ed already, so a 404 is still answered up front.
    # The next chunk is read (in a worker thread) while this one is sent: both release
    # the GIL, so disk and socket overlap.
    try:
        reader = await run(open_reader)
    except FileNotFoundError:
        raise StorageError(f"{what} went before it was read") from None
    pending = asyncio.ensure_future(run(reader.read, IO_CHUNK))
    sent = 0
    try:
        while chunk := await pending:
            pending = asyncio.ensure_future(run(reader.read, IO_CHUNK))
            sent += len(chunk)
            yield chunk
        if sent < length:
            raise StorageError(f"{what} ended after {sent} of {length} bytes")
    finally:
        with suppress(Exception):
            await pending  # a read in a thread cannot be cancelled: let it finish
        await run(reader.close)


async def get_blob(request: Request, name: str, digest_text: str) -> Response:
    digest = parse_digest(digest_text)
    registry = state(request).registry
    size = await run(registry.blob_size, name, digest)
    headers = {
        "Docker-Content-Digest": str(digest),
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }
    try:
        span = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    status, start, length = 200, 0, size
    if span is not None:
        status, start, length = 206, span[0], span[1] - span[0] + 1
        headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{size}"
    headers["Content-Length"] = str(length)
    record(request, "pull", Target("blobs", name, str(digest), BLOB_MEDIA_TYPE, size))
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    return StreamingResponse(
        _stream(partial(registry.open_blob, name, digest, start, length), length, f"blob {digest}"),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )


async def delete_blob(request: Request, name: str, digest_text: str) -> Response:
    digest: Digest = parse_digest(digest_text)
    await run(state(request).registry.delete_blob, name, digest)
    record(request, "delete", Target("blobs", name, digest=str(digest)))
    return Response(status_code=202, headers={"Content-Length": "0"})
