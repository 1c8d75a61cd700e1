"""`/v2/<name>/blobs/uploads/[<uuid>]`: start (or mount, or monolithic), PATCH chunks,
PUT to complete, GET status, DELETE to cancel."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from regtool.oci import check_name
from regtool.server.errors import BlobUploadInvalid
from regtool.server.http import parse_digest, pump, run, state
from regtool.server.upload_store import Appender

_CONTENT_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/\d+|/\*)?$")


def _upload_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    # distribution reports "0-0" for an empty upload as well as for one byte.
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
        "Content-Length": "0",
    }


def _created(name: str, digest: str) -> Response:
    return Response(
        status_code=201,
        headers={
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": digest,
            "Content-Length": "0",
        },
    )


def _chunk_offset(request: Request) -> int | None:
    """Where the client says its chunk starts (`Content-Range: <start>-<end>`)."""
    header = request.headers.get("content-range")
    if not header:
        return None
    m = _CONTENT_RANGE_RE.match(header.strip())
    if not m or int(m.group(2)) < int(m.group(1)):
        raise BlobUploadInvalid(f"malformed Content-Range {header[:60]!r}")
    return int(m.group(1))


async def _receive(request: Request, name: str, upload_id: str) -> Appender | None:
    """Append the request body to the upload, checking its Content-Range."""
    uploads = state(request).uploads
    offset = _chunk_offset(request)
    appender = await pump(request, lambda: run(uploads.append, name, upload_id, offset))
    if appender is None and offset is not None:
        await run(uploads.check_offset, name, upload_id, offset)
    return appender


async def start_upload(request: Request, name: str) -> Response:
    st = state(request)
    mount, source = request.query_params.get("mount"), request.query_params.get("from")
    if mount and source:
        digest = parse_digest(mount)
        if await run(st.registry.mount_blob, name, check_name(source), digest):
            return _created(name, str(digest))
        # Not in the source repository: an ordinary upload, as distribution falls back.
    digest_text = request.query_params.get("digest")
    digest = None if digest_text is None else parse_digest(digest_text)  # before storing
    upload_id = await run(st.uploads.start, name)
    if digest is None:
        return Response(status_code=202, headers=_upload_headers(name, upload_id, 0))
    try:
        appender = await pump(request, lambda: run(st.uploads.append, name, upload_id, 0))
    except BaseException:
        await run(st.uploads.cancel, name, upload_id)
        raise
    await run(st.uploads.complete, name, upload_id, digest, appender)
    return _created(name, str(digest))


async def patch_upload(request: Request, name: str, upload_id: str) -> Response:
    uploads = state(request).uploads
    appender = await _receive(request, name, upload_id)
    size = appender.size if appender else await run(uploads.size, name, upload_id)
    return Response(status_code=202, headers=_upload_headers(name, upload_id, size))


async def put_upload(request: Request, name: str, upload_id: str) -> Response:
    uploads = state(request).uploads
    digest = parse_digest(request.query_params.get("digest"))
    await run(uploads.size, name, upload_id)  # BLOB_UPLOAD_UNKNOWN before reading a body
    appender = await _receive(request, name, upload_id)
    await run(uploads.complete, name, upload_id, digest, appender)
    return _created(name, str(digest))


async def upload_status(request: Request, name: str, upload_id: str) -> Response:
    size = await run(state(request).uploads.size, name, upload_id)
    return Response(status_code=204, headers=_upload_headers(name, upload_id, size))


async def cancel_upload(request: Request, name: str, upload_id: str) -> Response:
    await run(state(request).uploads.cancel, name, upload_id)
    return Response(status_code=204, headers={"Content-Length": "0"})
