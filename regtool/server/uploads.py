"""`/v2/<name>/blobs/uploads/[<uuid>]`: start (or mount, or monolithic), PATCH chunks,
PUT to complete, GET status, DELETE to cancel.

A request that writes holds the upload's lease (`upload_session`) from before its body
is read until it is done, renewing it meanwhile; a second one is refused at once with
416 and the upload's `Range`, as an out-of-order chunk is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from regtool.oci import Digest, check_name
from regtool.server.errors import BlobUploadInvalid, RangeInvalid, SizeInvalid, UploadBusy
from regtool.server.http import (
    IO_CHUNK,
    parse_digest,
    parse_number,
    run,
    run_to_the_end,
    state,
)
from regtool.server.notifications.events import BLOB_MEDIA_TYPE, Target, record
from regtool.server.upload_store import UploadSession
from regtool.uploads.lease import LeaseBusy

log = logging.getLogger(__name__)

T = TypeVar("T")

# `Content-Range: <start>-<end>` of a chunk (inclusive, as the OCI spec writes it);
# distribution's clients may add RFC 9110's unit and length. ASCII, matched whole.
_CONTENT_RANGE_RE = re.compile(
    r"(?:bytes[ =])?([0-9]{1,18})-([0-9]{1,18})(?:/(?:[0-9]{1,18}|\*))?", re.ASCII
)


def _upload_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    """`Location`, `Range` (the OCI spec's `0-<last byte>`; distribution reports `0-0`
    for an empty upload as well as for one byte) and `Docker-Upload-UUID`."""
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
    }


def _accepted(name: str, upload_id: str, size: int) -> Response:
    headers = {**_upload_headers(name, upload_id, size), "Content-Length": "0"}
    return Response(status_code=202, headers=headers)


def _created(name: str, digest: str) -> Response:
    return Response(
        status_code=201,
        headers={
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": digest,
            "Content-Length": "0",
        },
    )


@contextlib.contextmanager
def _range_headers(name: str, upload_id: str) -> Iterator[None]:
    """A 416 for a chunk carries the upload's headers, so the client knows where to go on."""
    try:
        yield
    except RangeInvalid as e:
        e.headers.update(_upload_headers(name, upload_id, e.size))
        raise


def chunk_range(request: Request) -> tuple[int, int] | None:
    """(offset, length) of the chunk the client says it sends (`Content-Range`), or None.
    A malformed one is `BlobUploadInvalid`; one that disagrees with `Content-Length` is
    `SizeInvalid`, before any byte is read (distribution's check)."""
    header = request.headers.get("content-range", "")
    if not header:
        return None
    m = _CONTENT_RANGE_RE.fullmatch(header.strip(" \t"))
    if not m or int(m.group(2)) < int(m.group(1)):
        raise BlobUploadInvalid(f"malformed Content-Range {header[:60]!a}")  # bytes as sent
    start, length = int(m.group(1)), int(m.group(2)) - int(m.group(1)) + 1
    declared = request.headers.get("content-length")
    if declared is not None and parse_number(declared) != length:
        raise SizeInvalid(
            f"Content-Length {declared[:20]!a} does not match Content-Range {header[:60]!a}"
        )
    return start, length


@contextlib.asynccontextmanager
async def upload_session(
    request: Request, name: str, upload_id: str
) -> AsyncIterator[UploadSession]:
    """The upload's lease, held (and renewed) for the duration of the block; at its end
    what was not committed is taken away and the lease released, to the end even if the
    request is cancelled meanwhile (`run_to_the_end`). Counted in
    `regtool_uploads_in_progress` meanwhile, when there are metrics. A lease another
    writer holds (or this one lost) is the API's `UploadBusy`."""
    st = state(request)
    try:
        session = await run(st.uploads.open, name, upload_id)
    except LeaseBusy as e:
        raise UploadBusy(str(e), e.size) from None
    renewer = _Renewer(session)
    if st.metrics is not None:
        st.metrics.uploads_in_progress += 1
    try:
        yield session
    except LeaseBusy as e:
        raise UploadBusy(str(e), e.size) from None
    finally:
        if st.metrics is not None:
            st.metrics.uploads_in_progress -= 1
        renewer.stop()
        if not session.completed:  # a completed upload is gone, lease and all
            await run_to_the_end(session.close)


class _Renewer:
    """Renews a session's lease every `renew_every` seconds until stopped. Most requests
    end before the first renewal: a timer costs less than a task each."""

    def __init__(self, session: UploadSession):
        self.session = session
        self.every = session.store.lease_terms.renew_every
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = self.loop.call_later(self.every, self._due)
        self.task: asyncio.Task[None] | None = None
        self.stopped = False

    def _due(self) -> None:
        self.timer = None
        if not self.stopped:
            self.task = self.loop.create_task(self._renew())

    async def _renew(self) -> None:
        try:
            await run(self.session.renew)
        except LeaseBusy:
            return  # lost: the session's writes refuse by themselves
        except Exception:  # a storage hiccup: the next round tries again
            log.warning("renewing the lease of upload %s failed", self.session.upload_id)
        if not self.stopped:
            self.timer = self.loop.call_later(self.every, self._due)

    def stop(self) -> None:
        """No renewal from now on. One under way in its thread ends there; the lease's
        lock orders it before a release."""
        self.stopped = True
        if self.timer is not None:
            self.timer.cancel()
        if self.task is not None:
            self.task.cancel()


async def pump(
    request: Request,
    session: UploadSession,
    expected: int | None,
    then: Callable[[], T] | None = None,
) -> T | None:
    """Stream the request body into the upload, committing it at the end, then call
    `then` (completing the upload) in the same worker thread: a small body takes one trip
    to a worker thread, its completion included. Returns what `then` returned.
    `expected`, if given, is the length the body must have (`SizeInvalid` otherwise).
    Bytes are gathered to `IO_CHUNK` and written in a worker thread while the next chunk
    is received; at most two chunks are held in memory. On any failure (a cancellation
    too) what this request wrote and did not commit is taken away again."""
    received = 0
    buf = bytearray()
    pending: asyncio.Task[None] | None = None
    try:
        async for chunk in request.stream():
            if not chunk:
                continue
            received += len(chunk)
            if expected is not None and received > expected:
                raise SizeInvalid(f"body is longer than the {expected} bytes of Content-Range")
            buf += chunk
            if len(buf) >= IO_CHUNK:
                data = bytes(buf)
                buf.clear()
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(run(session.write, data))
        if pending is not None:
            await pending
            pending = None
        if expected is not None and received != expected:
            raise SizeInvalid(f"body has {received} bytes, Content-Range says {expected}")
        if not received and then is None:
            return None  # nothing to commit, nothing to call
        return await run(_finish, session, bytes(buf), then)
    except BaseException:
        if pending is not None:  # its failure, if any, is this one's cause: not reported
            pending.add_done_callback(_retrieved)
        await run_to_the_end(session.abort)  # after a write still in its thread
        raise


def _finish(session: UploadSession, rest: bytes, then: Callable[[], T] | None) -> T | None:
    """The end of `pump`, in its worker thread."""
    if rest or session.appending:
        session.finish(rest)
    return None if then is None else then()


def _retrieved(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


async def _receive(
    request: Request, session: UploadSession, then: Callable[[], T] | None = None
) -> T | None:
    """Append the request body to the upload, checking its `Content-Range`; then `then`
    (`pump`)."""
    chunk = chunk_range(request)
    session.check_offset(chunk[0] if chunk else None)
    return await pump(request, session, chunk[1] if chunk else None, then)


async def start_upload(request: Request, name: str) -> Response:
    st = state(request)
    mount, source = request.query_params.get("mount"), request.query_params.get("from")
    if mount and source:
        mounted = parse_digest(mount)
        if await run(st.registry.mount_blob, name, check_name(source), mounted):
            record(
                request,
                "mount",
                Target("blobs", name, str(mounted), BLOB_MEDIA_TYPE, from_repository=source),
            )
            return _created(name, str(mounted))
        # Not in the source repository: an ordinary upload, as distribution falls back.
    digest_text = request.query_params.get("digest")
    digest = None if digest_text is None else parse_digest(digest_text)  # before storing
    upload_id = await run(st.uploads.start, name)
    if digest is None:
        return _accepted(name, upload_id, 0)
    try:
        async with upload_session(request, name, upload_id) as session:
            size = await pump(request, session, None, partial(session.complete, digest))
            assert size is not None
    except BaseException:
        with contextlib.suppress(Exception):
            await run_to_the_end(st.uploads.cancel, name, upload_id)
        raise
    _pushed(request, name, digest, size)
    return _created(name, str(digest))


async def patch_upload(request: Request, name: str, upload_id: str) -> Response:
    with _range_headers(name, upload_id):
        async with upload_session(request, name, upload_id) as session:
            await _receive(request, session)
            return _accepted(name, upload_id, session.size)


async def put_upload(request: Request, name: str, upload_id: str) -> Response:
    with _range_headers(name, upload_id):
        async with upload_session(request, name, upload_id) as session:
            digest = parse_digest(request.query_params.get("digest"))  # after: 404 first
            size = await _receive(request, session, partial(session.complete, digest))
            assert size is not None
    _pushed(request, name, digest, size)
    return _created(name, str(digest))


def _pushed(request: Request, name: str, digest: Digest, size: int) -> None:
    record(request, "push", Target("blobs", name, str(digest), BLOB_MEDIA_TYPE, size))


async def upload_status(request: Request, name: str, upload_id: str) -> Response:
    size = await run(state(request).uploads.size, name, upload_id)
    # 204: no Content-Length (RFC 9110 8.6), which Response leaves out by itself
    return Response(status_code=204, headers=_upload_headers(name, upload_id, size))


async def cancel_upload(request: Request, name: str, upload_id: str) -> Response:
    await run(state(request).uploads.cancel, name, upload_id)
    return Response(status_code=204, headers={"Docker-Upload-UUID": upload_id})
