"""`/v2/<name>/manifests/<reference>`, `/v2/<name>/referrers/<digest>`,
`/v2/<name>/tags/list` and `/v2/_catalog`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from regtool.errors import DigestInvalid
from regtool.layout.manifests import MAX_MANIFEST_SIZE
from regtool.oci import OCI_INDEX, OCI_MANIFEST, Digest, check_tag
from regtool.server.errors import ManifestTooLarge, ManifestUnknown, TagInvalid
from regtool.server.http import (
    catalog_page_size,
    guard,
    paginate,
    parse_digest,
    parse_number,
    run,
    state,
)
from regtool.server.notifications.events import Target, record
from regtool.server.registry import catalog_after, content_media_type

#: Most repositories `_catalog` returns without `n`, as distribution (at most its
#: `catalog.maxentries`; its `Link` names the `n` to go on with).
CATALOG_DEFAULT_N = 100


def parse_reference(text: str) -> str | Digest:
    """A tag, or a digest when the reference has a colon (tags cannot); `TagInvalid` or
    `DigestInvalid` for anything else, as a PUT is refused."""
    if ":" in text:
        return parse_digest(text)
    try:
        return check_tag(text)
    except ValueError:
        raise TagInvalid(f"invalid tag {text[:140]!r}", {"tag": text[:140]}) from None


def existing_reference(text: str) -> str | Digest:
    """A reference to look up (GET, HEAD, DELETE): one that is neither a tag nor a digest
    names no manifest, so it is `ManifestUnknown` (404), as the OCI spec and its
    conformance suite expect, not a 400."""
    try:
        return parse_reference(text)
    except (TagInvalid, DigestInvalid):
        raise ManifestUnknown(f"no manifest is known as {text[:140]!r}") from None


def _accepted(request: Request) -> set[str]:
    types = set()
    for header in request.headers.getlist("accept"):
        for part in header.split(","):
            types.add(part.split(";")[0].strip())
    types.discard("")
    return types


async def get_manifest(request: Request, name: str, ref_text: str) -> Response:
    reference = existing_reference(ref_text)
    stored = await run(state(request).registry.get_manifest, name, reference)
    accepted = _accepted(request)
    # distribution 2.8 hides OCI manifests from clients that list types but not OCI's.
    if accepted and "*/*" not in accepted and stored.media_type not in accepted:
        if stored.media_type == OCI_MANIFEST:
            raise ManifestUnknown(
                "OCI manifest found, but accept header does not support OCI manifests"
            )
        if stored.media_type == OCI_INDEX:
            raise ManifestUnknown("OCI index found, but accept header does not support OCI indexes")
    headers = {
        "Docker-Content-Digest": str(stored.digest),
        "ETag": f'"{stored.digest}"',
        "Content-Length": str(len(stored.data)),
    }
    body = b"" if request.method == "HEAD" else stored.data
    tag = reference if isinstance(reference, str) else None
    target = Target("manifests", name, str(stored.digest), stored.media_type, len(stored.data), tag)
    record(request, "pull", target, stored.data)
    # A pull is a GET (a HEAD only asks); its record is written after the response.
    registry = state(request).registry
    pulled = registry.pulls.pulled(name, stored.digest) if request.method == "GET" else None
    return Response(body, headers=headers, media_type=stored.media_type, background=pulled)


async def _read_body(request: Request) -> bytes:
    """The manifest body, refused past `MAX_MANIFEST_SIZE` without reading the rest."""
    declared = parse_number(request.headers.get("content-length", ""))
    if declared is not None and declared > MAX_MANIFEST_SIZE:
        raise ManifestTooLarge(f"manifest of {declared} bytes exceeds {MAX_MANIFEST_SIZE}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_MANIFEST_SIZE:
            raise ManifestTooLarge(f"manifest exceeds {MAX_MANIFEST_SIZE} bytes")
    return bytes(body)


async def put_manifest(request: Request, name: str, ref_text: str) -> Response:
    reference = parse_reference(ref_text)
    data = await _read_body(request)
    result = await run(
        state(request).registry.put_manifest,
        name,
        reference,
        data,
        request.headers.get("content-type"),
    )
    tag = reference if isinstance(reference, str) else None
    media_type = content_media_type(request.headers.get("content-type"))
    target = Target("manifests", name, str(result.digest), media_type, len(data), tag)
    record(request, "push", target, data)
    headers = {
        "Location": f"/v2/{name}/manifests/{result.digest}",
        "Docker-Content-Digest": str(result.digest),
        "Content-Length": "0",
    }
    if result.subject is not None:
        headers["OCI-Subject"] = str(result.subject)
    return Response(status_code=201, headers=headers)


async def delete_manifest(request: Request, name: str, ref_text: str) -> Response:
    reference = existing_reference(ref_text)
    registry = state(request).registry
    if isinstance(reference, Digest):
        await run(registry.delete_manifest, name, reference)
        record(request, "delete", Target("manifests", name, digest=str(reference)))
    else:
        await run(registry.delete_tag, name, reference)
        record(request, "delete", Target("manifests", name, tag=reference))
    return Response(status_code=202, headers={"Content-Length": "0"})


async def referrers(request: Request, name: str, digest_text: str) -> Response:
    subject = parse_digest(digest_text)
    artifact_type = request.query_params.get("artifactType") or None
    index = await run(state(request).registry.referrers, name, subject, artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return JSONResponse(index, headers=headers, media_type=OCI_INDEX)


async def tags_list(request: Request, name: str) -> Response:
    tags = await run(state(request).registry.tags, name)
    page, link = paginate(tags, request)
    headers = {"Link": link} if link else {}
    return JSONResponse({"name": name, "tags": page}, headers=headers)


async def catalog(request: Request) -> Response:
    names = await run(state(request).registry.repositories)
    may_pull = guard(request).may_pull(request)
    if may_pull is not None:  # only what the user may pull, filtered before paging
        names = [n for n in names if may_pull(n)]
    st = state(request)
    n = catalog_page_size(request, CATALOG_DEFAULT_N, st.catalog_max_entries)
    page, link = paginate(names, request, after=catalog_after, n=n)
    headers = {"Link": link} if link else {}
    return JSONResponse({"repositories": page}, headers=headers)
