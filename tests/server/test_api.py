"""The registry API at the HTTP level, with httpx: every endpoint and the bad cases."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from regtool.layout.v2 import V2Layout
from regtool.layout.v2_write import uploads_dir
from regtool.oci import Digest
from regtool.server.upload_store import UploadStore
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def client(local_registry: RunningRegistry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_registry.url, timeout=30) as c:
        yield c


def error_code(resp: httpx.Response) -> str:
    return str(resp.json()["errors"][0]["code"])


def push_blob(client: httpx.Client, name: str, data: bytes) -> str:
    digest = sha(data)
    r = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    return digest


def image_manifest(client: httpx.Client, name: str, **extra: object) -> bytes:
    config = b'{"architecture":"amd64","os":"linux"}'
    layer = os.urandom(300)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": push_blob(client, name, config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": push_blob(client, name, layer),
                "size": len(layer),
            }
        ],
        **extra,
    }
    return json.dumps(doc).encode()


def put_manifest(
    client: httpx.Client, name: str, ref: str, body: bytes, ctype: str = OCI_MANIFEST
) -> httpx.Response:
    return client.put(f"/v2/{name}/manifests/{ref}", content=body, headers={"Content-Type": ctype})


def test_version_check_and_header(client: httpx.Client) -> None:
    r = client.get("/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    r = client.get("/v2/nope/tags/list")
    assert r.status_code == 404
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert error_code(r) == "NAME_UNKNOWN"


def test_chunked_upload_and_blob_reads(
    client: httpx.Client, local_registry: RunningRegistry
) -> None:
    data = os.urandom(5000)
    r = client.post("/v2/team/app/blobs/uploads/")
    assert r.status_code == 202
    assert r.headers["Range"] == "0-0"
    location, upload_id = r.headers["Location"], r.headers["Docker-Upload-UUID"]
    assert location.endswith(upload_id)
    started = local_registry.layout.upload_started_at("team/app", upload_id)
    stamp = local_registry.driver.get(started)
    assert stamp.endswith(b"Z") and not stamp.endswith(b"\n")

    r = client.patch(location, content=data[:2000], headers={"Content-Range": "0-1999"})
    assert r.status_code == 202 and r.headers["Range"] == "0-1999"
    # a gap: the next chunk must start at 2000
    r = client.patch(location, content=data[2500:], headers={"Content-Range": "2500-4999"})
    assert r.status_code == 416 and error_code(r) == "RANGE_INVALID"
    r = client.get(location)
    assert r.status_code == 204 and r.headers["Range"] == "0-1999"
    r = client.patch(location, content=data[2000:4000], headers={"Content-Range": "2000-3999"})
    assert r.status_code == 202
    r = client.put(location, params={"digest": sha(data)}, content=data[4000:])
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == sha(data)
    assert r.headers["Location"] == f"{client.base_url}/v2/team/app/blobs/{sha(data)}"
    assert not local_registry.driver.exists(local_registry.layout.upload_dir("team/app", upload_id))

    link = local_registry.layout.layer_link("team/app", Digest.parse(sha(data)))
    assert local_registry.driver.get(link) == sha(data).encode()

    blob = f"/v2/team/app/blobs/{sha(data)}"
    r = client.head(blob)
    assert r.status_code == 200 and r.headers["Content-Length"] == "5000"
    assert r.headers["Docker-Content-Digest"] == sha(data)
    assert client.get(blob).content == data
    r = client.get(blob, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == "bytes 10-19/5000"
    r = client.get(blob, headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == data[-5:]
    r = client.get(blob, headers={"Range": "bytes=5000-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */5000"  # RFC 9110 14.4

    # unlinked from another repository
    assert client.head(f"/v2/other/blobs/{sha(data)}").status_code == 404
    r = client.delete(blob)
    assert r.status_code == 202
    assert client.head(blob).status_code == 404
    assert local_registry.driver.exists(local_registry.layout.blob_data(Digest.parse(sha(data))))


def test_upload_hash_state_is_recomputed_on_a_cache_miss(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    """Another process (here: a cleared cache) continues an upload from storage alone."""
    stores: list[UploadStore] = []

    def uploads(layout: V2Layout) -> UploadStore:
        stores.append(UploadStore(layout))
        return stores[0]

    registry = serve_registry(LocalDriver(tmp_path / "store"), uploads=uploads)
    data = os.urandom(3000)
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        location = client.post("/v2/a/blobs/uploads/").headers["Location"]
        client.patch(location, content=data[:1000])
        upload_id = location.rsplit("/", 1)[1]
        assert len(stores[0].hash_states) == 1
        stores[0].hash_states.forget(upload_id)
        client.patch(location, content=data[1000:2000])
        assert len(stores[0].hash_states) == 0  # not known: not guessed either
        r = client.put(location, params={"digest": sha(data)}, content=data[2000:])
        assert r.status_code == 201, r.text


def test_upload_errors(client: httpx.Client, local_registry: RunningRegistry) -> None:
    data = b"hello"
    location = client.post("/v2/a/blobs/uploads/").headers["Location"]
    upload_id = location.rsplit("/", 1)[1]
    r = client.put(location, params={"digest": sha(b"other")}, content=data)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    # distribution cancels an upload whose digest did not match
    assert not local_registry.driver.exists(local_registry.layout.upload_dir("a", upload_id))

    unknown = "/v2/a/blobs/uploads/0b9e1d3c-0000-4000-8000-000000000000"
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        r = client.request(method, unknown, params={"digest": sha(data)})
        assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN", method
    r = client.get("/v2/a/blobs/uploads/..%2F..%2Fetc")
    assert r.status_code == 404

    location = client.post("/v2/a/blobs/uploads/").headers["Location"]
    r = client.put(location, content=data)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    assert client.delete(location).status_code == 204
    assert client.get(location).status_code == 404

    r = client.post("/v2/a/blobs/uploads/", params={"digest": "sha256:xyz"}, content=data)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    r = client.post("/v2/a/blobs/uploads/", params={"digest": sha(b"other")}, content=data)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    # failed uploads leave nothing in _uploads/
    uploads = uploads_dir(local_registry.layout, "a")
    assert list(local_registry.driver.walk(uploads)) == []
    assert client.get(f"/v2/a/blobs/{sha(b'nothing')}").status_code == 404
    assert error_code(client.get(f"/v2/a/blobs/{sha(b'nothing')}")) == "BLOB_UNKNOWN"


def test_empty_blob(client: httpx.Client) -> None:
    r = client.post("/v2/a/blobs/uploads/", params={"digest": sha(b"")})
    assert r.status_code == 201
    r = client.get(f"/v2/a/blobs/{sha(b'')}")
    assert r.status_code == 200 and r.content == b""


def test_cross_repository_mount(client: httpx.Client) -> None:
    digest = push_blob(client, "src/app", b"shared layer")
    r = client.post("/v2/dst/app/blobs/uploads/", params={"mount": digest, "from": "src/app"})
    assert r.status_code == 201
    assert r.headers["Location"] == f"{client.base_url}/v2/dst/app/blobs/{digest}"
    assert client.get(f"/v2/dst/app/blobs/{digest}").content == b"shared layer"
    # not in the source: an ordinary upload starts instead
    r = client.post("/v2/dst/app/blobs/uploads/", params={"mount": sha(b"x"), "from": "src/app"})
    assert r.status_code == 202 and "Docker-Upload-UUID" in r.headers


def test_manifest_put_get_delete(client: httpx.Client, local_registry: RunningRegistry) -> None:
    body = image_manifest(client, "team/app")
    digest = sha(body)
    r = put_manifest(client, "team/app", "v1", body)
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Location"] == f"{client.base_url}/v2/team/app/manifests/{digest}"
    layout, drv = local_registry.layout, local_registry.driver
    d = Digest.parse(digest)
    assert drv.get(layout.tag_current_link("team/app", "v1")) == digest.encode()
    assert drv.get(layout.tag_index_link("team/app", "v1", d)) == digest.encode()
    assert drv.get(layout.revision_link("team/app", d)) == digest.encode()
    assert drv.get(layout.blob_data(d)) == body

    for ref in ("v1", digest):
        r = client.get(f"/v2/team/app/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200 and r.content == body
        assert r.headers["Content-Type"] == OCI_MANIFEST
        assert r.headers["Docker-Content-Digest"] == digest
    r = client.head("/v2/team/app/manifests/v1")
    assert r.status_code == 200 and r.headers["Content-Length"] == str(len(body))
    # distribution hides OCI manifests from clients that do not accept them
    r = client.get("/v2/team/app/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"

    assert put_manifest(client, "team/app", "v2", body).status_code == 201
    assert client.get("/v2/team/app/tags/list").json() == {"name": "team/app", "tags": ["v1", "v2"]}
    assert client.delete("/v2/team/app/manifests/v2").status_code == 202
    assert client.get("/v2/team/app/tags/list").json()["tags"] == ["v1"]
    assert client.get("/v2/team/app/manifests/v1").status_code == 200
    assert client.delete(f"/v2/team/app/manifests/{digest}").status_code == 202
    r = client.get("/v2/team/app/manifests/v1")
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    assert client.get(f"/v2/team/app/manifests/{digest}").status_code == 404
    # nothing is left under _manifests/: by the layout's definition no repository either
    r = client.get("/v2/team/app/tags/list")
    assert r.status_code == 404 and error_code(r) == "NAME_UNKNOWN"


def test_manifest_put_errors(client: httpx.Client) -> None:
    body = image_manifest(client, "a")
    r = put_manifest(client, "a", sha(b"something else"), body)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"

    doc = json.loads(body)
    doc["layers"][0]["digest"] = sha(b"never pushed")
    r = put_manifest(client, "a", "v1", json.dumps(doc).encode())
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"

    r = put_manifest(client, "other", "v1", body)  # blobs are not linked into `other`
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"

    r = put_manifest(client, "a", "v1", b"not json")
    assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID"

    huge = b'{"schemaVersion":2,"x":"' + b"a" * (4 << 20) + b'"}'
    r = put_manifest(client, "a", "big", huge)
    assert r.status_code == 413 and error_code(r) == "SIZE_INVALID"

    r = put_manifest(client, "a", "bad!tag", body)
    assert r.status_code == 400 and error_code(r) == "TAG_INVALID"

    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha(b"child"), "size": 5}],
    }
    r = put_manifest(client, "a", "idx", json.dumps(index).encode(), OCI_INDEX)
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"


@pytest.mark.parametrize(
    "path",
    [
        "/v2/UPPER/tags/list",
        "/v2/a..b/tags/list",
        "/v2/a/_layers/tags/list",
        "/v2/a//b/tags/list",
        "/v2/-a/manifests/latest",
        "/v2/a%2F..%2F..%2Fetc/tags/list",
    ],
)
def test_invalid_names(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 400, r.text
    assert error_code(r) == "NAME_INVALID"


def test_index_referrers_and_listings(client: httpx.Client) -> None:
    child = image_manifest(client, "r/app")
    assert put_manifest(client, "r/app", sha(child), child).status_code == 201
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": sha(child),
                    "size": len(child),
                    "platform": {"os": "linux", "architecture": "amd64"},
                }
            ],
        }
    ).encode()
    assert put_manifest(client, "r/app", "multi", index, OCI_INDEX).status_code == 201
    r = client.get("/v2/r/app/manifests/multi", headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"})
    assert r.headers["Content-Type"] == OCI_INDEX and r.content == index

    subject = {"mediaType": OCI_MANIFEST, "digest": sha(child), "size": len(child)}
    sbom = image_manifest(client, "r/app", artifactType="application/spdx+json", subject=subject)
    r = put_manifest(client, "r/app", sha(sbom), sbom)
    assert r.status_code == 201 and r.headers["OCI-Subject"] == sha(child)
    sig = image_manifest(client, "r/app", artifactType="application/sig", subject=subject)
    assert put_manifest(client, "r/app", sha(sig), sig).status_code == 201

    r = client.get(f"/v2/r/app/referrers/{sha(child)}")
    assert r.status_code == 200 and r.headers["Content-Type"] == OCI_INDEX
    found = {m["digest"]: m["artifactType"] for m in r.json()["manifests"]}
    assert found == {sha(sbom): "application/spdx+json", sha(sig): "application/sig"}
    r = client.get(f"/v2/r/app/referrers/{sha(child)}", params={"artifactType": "application/sig"})
    assert [m["digest"] for m in r.json()["manifests"]] == [sha(sig)]
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    r = client.get(f"/v2/r/app/referrers/{sha(b'none')}")
    assert r.status_code == 200 and r.json()["manifests"] == []

    for tag in ("c", "a", "b"):
        assert put_manifest(client, "r/app", tag, child).status_code == 201
    r = client.get("/v2/r/app/tags/list", params={"n": 2})
    assert r.json()["tags"] == ["a", "b"]
    assert r.headers["Link"] == '</v2/r/app/tags/list?last=b&n=2>; rel="next"'
    r = client.get("/v2/r/app/tags/list", params={"n": 2, "last": "b"})
    assert r.json()["tags"] == ["c", "multi"] and "Link" not in r.headers
    r = client.get("/v2/r/app/tags/list", params={"n": "x"})
    assert r.status_code == 400 and error_code(r) == "PAGINATION_NUMBER_INVALID"

    push_blob(client, "z/other", b"x")
    assert (
        put_manifest(client, "z/other", "t", image_manifest(client, "z/other")).status_code == 201
    )
    assert client.get("/v2/_catalog").json() == {"repositories": ["r/app", "z/other"]}
    r = client.get("/v2/_catalog", params={"n": 1})
    assert r.json() == {"repositories": ["r/app"]}
    assert r.headers["Link"] == '</v2/_catalog?last=r%2Fapp&n=1>; rel="next"'
    r = client.get("/v2/_catalog", params={"n": 1, "last": "r/app"})
    assert r.json() == {"repositories": ["z/other"]}


def test_unsupported_method_and_unknown_route(client: httpx.Client) -> None:
    r = client.post("/v2/a/tags/list")
    assert r.status_code == 405 and error_code(r) == "UNSUPPORTED"
    r = client.get("/v2/a/unknown")
    assert r.status_code == 404


def test_referrers_include_sha512_manifests(client: httpx.Client) -> None:
    """A referrer stored under its sha512 digest is a revision too, and is listed."""
    child = image_manifest(client, "r/five")
    assert put_manifest(client, "r/five", sha(child), child).status_code == 201
    subject = {"mediaType": OCI_MANIFEST, "digest": sha(child), "size": len(child)}
    sig = image_manifest(client, "r/five", artifactType="application/sig", subject=subject)
    sig512 = "sha512:" + hashlib.sha512(sig).hexdigest()
    assert put_manifest(client, "r/five", sig512, sig).status_code == 201
    r = client.get(f"/v2/r/five/referrers/{sha(child)}")
    assert [m["digest"] for m in r.json()["manifests"]] == [sig512]


def test_references_that_name_nothing(client: httpx.Client) -> None:
    """A reference that is neither a tag nor a digest names no manifest: 404
    MANIFEST_UNKNOWN to GET, HEAD and DELETE (the OCI spec's conformance suite), while a
    PUT is refused as invalid. A newline in the path is part of the reference."""
    body = image_manifest(client, "a")
    assert put_manifest(client, "a", "v1", body).status_code == 201
    for ref in (".INVALID_MANIFEST_NAME", "t%C3%A4g", "v1%0A", "sha256:xyz", "x" * 129):
        for method in ("GET", "HEAD", "DELETE"):
            r = client.request(method, f"/v2/a/manifests/{ref}")
            assert r.status_code == 404, (method, ref)
            if method != "HEAD":
                assert error_code(r) == "MANIFEST_UNKNOWN"
    for ref in ("v1%0A", "t%C3%A4g", "%D9%A1"):
        r = put_manifest(client, "a", ref, body)
        assert r.status_code == 400 and error_code(r) == "TAG_INVALID", ref
    r = put_manifest(client, "a", "sha256:xyz", body)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    assert client.get("/v2/a/tags/list").json()["tags"] == ["v1"]
    r = client.get("/v2/a%0A/tags/list")
    assert r.status_code == 400 and error_code(r) == "NAME_INVALID"


def test_method_not_allowed_names_the_allowed_ones(client: httpx.Client) -> None:
    r = client.post("/v2/a/tags/list")
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    r = client.patch(f"/v2/a/blobs/{sha(b'x')}")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, DELETE"
    r = client.post("/v2/")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    assert r.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("ctype", "status"),
    [
        ("text/plain", 400),
        (None, 400),
        ("application/json", 400),
        ("application/octet-stream", 400),
        (DOCKER_MANIFEST, 400),  # the body is an OCI manifest
        (OCI_MANIFEST, 201),
        (OCI_MANIFEST.upper(), 201),
        (f"{OCI_MANIFEST}; charset=utf-8", 201),
    ],
)
def test_manifest_content_type(client: httpx.Client, ctype: str | None, status: int) -> None:
    """distribution 2.8 parses a manifest by its Content-Type, and anything but a
    manifest type as schema 1, which fails: 400 MANIFEST_INVALID, nothing stored."""
    body = image_manifest(client, "a")
    headers = {"Content-Type": ctype} if ctype else {}
    r = client.put("/v2/a/manifests/t", content=body, headers=headers)
    assert r.status_code == status, r.text
    if status == 400:
        assert error_code(r) == "MANIFEST_INVALID"
        assert client.get("/v2/a/manifests/t").status_code == 404


def test_non_ascii_header_values_are_echoed_as_sent(client: httpx.Client) -> None:
    """A header's UTF-8 bytes named in an error message are shown escaped as sent, never
    as the mojibake of their Latin-1 decoding."""
    body = image_manifest(client, "a")
    ctype = "application/vnd.t\u00e4g".encode()
    r = client.put("/v2/a/manifests/t", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID"
    message = r.json()["errors"][0]["message"]
    assert "'application/vnd.t\\xc3\\xa4g' is not a manifest type" in message, message
    assert message.isascii()
    location = client.post("/v2/a/blobs/uploads/").headers["Location"]
    r = client.patch(location, content=b"x", headers={"Content-Range": "0-0\u00e4".encode()})
    assert r.status_code == 400 and error_code(r) == "BLOB_UPLOAD_INVALID"
    assert r.json()["errors"][0]["message"] == "malformed Content-Range '0-0\\xc3\\xa4'"


@pytest.mark.parametrize("content", [b"", b"sha256:" + b"0" * 64], ids=["empty", "other"])
def test_links_that_do_not_name_their_blob(
    client: httpx.Client, local_registry: RunningRegistry, content: bytes
) -> None:
    """A `_layers` link that is empty or names another digest is as good as absent: the
    blob is unknown, a manifest cannot reference it, a mount cannot take it from there,
    and an upload or a mount re-links it. Revision and tag links likewise."""
    layout, drv = local_registry.layout, local_registry.driver
    layer = os.urandom(100)
    digest = push_blob(client, "a", layer)
    d = Digest.parse(digest)
    drv.put(layout.layer_link("a", d), content)
    for method in ("GET", "HEAD"):
        r = client.request(method, f"/v2/a/blobs/{digest}")
        assert r.status_code == 404, method
    assert error_code(client.get(f"/v2/a/blobs/{digest}")) == "BLOB_UNKNOWN"
    assert client.delete(f"/v2/a/blobs/{digest}").status_code == 404
    doc = json.loads(image_manifest(client, "a"))
    doc["layers"][0]["digest"], doc["layers"][0]["size"] = digest, len(layer)
    r = put_manifest(client, "a", "v1", json.dumps(doc).encode())
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    r = client.post("/v2/b/blobs/uploads/", params={"mount": digest, "from": "a"})
    assert r.status_code == 202  # not mountable from `a`: an ordinary upload starts
    assert push_blob(client, "a", layer) == digest  # the upload re-links it
    assert drv.get(layout.layer_link("a", d)) == digest.encode()
    assert client.get(f"/v2/a/blobs/{digest}").content == layer
    drv.put(layout.layer_link("b", d), content)
    r = client.post("/v2/b/blobs/uploads/", params={"mount": digest, "from": "a"})
    assert r.status_code == 201  # a mount re-links it too
    assert drv.get(layout.layer_link("b", d)) == digest.encode()

    body = json.dumps(doc).encode()
    assert put_manifest(client, "a", "v1", body).status_code == 201
    m = Digest.parse(sha(body))
    drv.put(layout.revision_link("a", m), content)
    for ref in ("v1", str(m)):
        r = client.get(f"/v2/a/manifests/{ref}")
        assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN", ref
    assert client.delete(f"/v2/a/manifests/{m}").status_code == 404
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": str(m), "size": len(body)}],
    }
    r = put_manifest(client, "a", "idx", json.dumps(index).encode(), OCI_INDEX)
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    assert put_manifest(client, "a", str(m), body).status_code == 201  # re-linked
    assert client.get("/v2/a/manifests/v1").status_code == 200
    drv.put(layout.tag_current_link("a", "v1"), b"")
    r = client.get("/v2/a/manifests/v1")
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"


def test_referrers_skip_revisions_whose_link_is_bad(
    client: httpx.Client, local_registry: RunningRegistry
) -> None:
    child = image_manifest(client, "r")
    assert put_manifest(client, "r", sha(child), child).status_code == 201
    subject = {"mediaType": OCI_MANIFEST, "digest": sha(child), "size": len(child)}
    sig = image_manifest(client, "r", artifactType="application/sig", subject=subject)
    assert put_manifest(client, "r", sha(sig), sig).status_code == 201
    assert len(client.get(f"/v2/r/referrers/{sha(child)}").json()["manifests"]) == 1
    layout = local_registry.layout
    local_registry.driver.put(layout.revision_link("r", Digest.parse(sha(sig))), b"")
    assert client.get(f"/v2/r/referrers/{sha(child)}").json()["manifests"] == []


def test_response_headers_follow_their_rfcs(client: httpx.Client) -> None:
    """204s carry no Content-Length (RFC 9110 8.6); upload responses say where the
    upload is and how far it got; a 416 for a chunk carries the upload's Range, a 416
    for a blob Range `Content-Range: bytes */size` (14.4); errors are JSON."""
    r = client.post("/v2/h/blobs/uploads/")
    location, upload_id = r.headers["Location"], r.headers["Docker-Upload-UUID"]
    assert location == f"{client.base_url}/v2/h/blobs/uploads/{upload_id}"
    assert r.headers["Range"] == "0-0"
    r = client.patch(location, content=b"abc", headers={"Content-Range": "0-2"})
    assert r.status_code == 202 and r.headers["Range"] == "0-2"
    assert r.headers["Content-Length"] == "0"
    for method in ("GET", "HEAD"):  # HEAD as distribution has it
        r = client.request(method, location)
        assert r.status_code == 204 and "Content-Length" not in r.headers
        assert r.headers["Range"] == "0-2" and r.headers["Docker-Upload-UUID"] == upload_id
    r = client.patch(location, content=b"x", headers={"Content-Range": "5-5"})
    assert r.status_code == 416 and r.headers["Range"] == "0-2"
    assert r.headers["Location"] == location and "Content-Range" not in r.headers
    assert r.headers["Content-Type"] == "application/json"
    r = client.delete(location)
    assert r.status_code == 204 and "Content-Length" not in r.headers
    assert r.headers["Docker-Upload-UUID"] == upload_id

    digest = push_blob(client, "h", b"0123456789")
    for method in ("GET", "HEAD"):
        r = client.request(method, f"/v2/h/blobs/{digest}", headers={"Range": "bytes=10-"})
        assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */10"
        r = client.request(method, f"/v2/h/blobs/{digest}", headers={"Range": "bytes=2-4"})
        assert r.status_code == 206 and r.headers["Content-Range"] == "bytes 2-4/10"
        assert r.headers["Content-Length"] == "3" and r.headers["ETag"] == f'"{digest}"'
    r = client.get(f"/v2/h/blobs/{digest}", headers={"Range": "bytes=\u0662-4".encode()})
    assert r.status_code == 200 and r.content == b"0123456789"  # not a range: ignored
