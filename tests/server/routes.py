"""Every route of the registry API as a table, over a store seeded through the API:
for tests that try each route under some policy (access rules, read-only, no-delete).

seeded = seed(client, ["team/app", "public/base"])   # a tagged image, a blob, an upload each
for route in ROUTES:
    r = route.call(client, "team/app", seeded["team/app"])
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Seeded:
    """What `seed` put in one repository: `manifest` (tagged v1, its bytes `manifest_bytes`),
    `blob` (its layer), `upload` (the path of an upload left open)."""

    manifest: str
    manifest_bytes: bytes
    blob: str
    upload: str


def _push(client: httpx.Client, name: str, data: bytes) -> str:
    r = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": sha(data)}, content=data)
    assert r.status_code == 201, r.text
    return sha(data)


def manifest_for(client: httpx.Client, name: str) -> bytes:
    config, layer = b'{"architecture":"amd64","os":"linux"}', os.urandom(200)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _push(client, name, config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": _push(client, name, layer),
                "size": len(layer),
            }
        ],
    }
    return json.dumps(doc).encode()


def seed(client: httpx.Client, names: list[str]) -> dict[str, Seeded]:
    """A tagged image and an open upload in each repository, through `client` (which
    may do everything)."""
    seeded = {}
    for name in names:
        body = manifest_for(client, name)
        headers = {"Content-Type": OCI_MANIFEST}
        r = client.put(f"/v2/{name}/manifests/v1", content=body, headers=headers)
        assert r.status_code == 201, r.text
        layer = json.loads(body)["layers"][0]["digest"]
        # the path alone: the upload outlives this server, which stops before another starts
        upload = httpx.URL(client.post(f"/v2/{name}/blobs/uploads/").headers["Location"]).path
        seeded[name] = Seeded(sha(body), body, layer, upload)
    return seeded


Call = Callable[[httpx.Client, str, Seeded], httpx.Response]


@dataclass(frozen=True)
class Route:
    """One request on a repository: `needs` the actions distribution asks for it
    (`pull`, `push`, `delete`), `ok` its status when allowed."""

    id: str
    needs: frozenset[str]
    ok: int
    call: Call


def _chunk(client: httpx.Client, name: str, s: Seeded) -> httpx.Response:
    return client.patch(s.upload, content=b"chunk")


def _complete(client: httpx.Client, name: str, s: Seeded) -> httpx.Response:
    return client.put(s.upload, params={"digest": sha(b"done")}, content=b"done")


def _put_manifest(client: httpx.Client, name: str, s: Seeded) -> httpx.Response:
    headers = {"Content-Type": OCI_MANIFEST}
    return client.put(f"/v2/{name}/manifests/v2", content=s.manifest_bytes, headers=headers)


PULL, PUSH_, DELETE = frozenset({"pull"}), frozenset({"pull", "push"}), frozenset({"delete"})


def _r(id: str, needs: frozenset[str], ok: int, call: Call) -> Route:
    return Route(id, needs, ok, call)


def _any(method: str, path: str) -> Call:
    def call(client: httpx.Client, name: str, s: Seeded) -> httpx.Response:
        filled = path.format(name=name, manifest=s.manifest, blob=s.blob, upload=s.upload)
        return client.request(method, filled)

    return call


ROUTES: list[Route] = [
    _r("tags-list", PULL, 200, _any("GET", "/v2/{name}/tags/list")),
    _r("manifest-get", PULL, 200, _any("GET", "/v2/{name}/manifests/v1")),
    _r("manifest-head", PULL, 200, _any("HEAD", "/v2/{name}/manifests/{manifest}")),
    _r("manifest-put", PUSH_, 201, _put_manifest),
    _r("manifest-delete", DELETE, 202, _any("DELETE", "/v2/{name}/manifests/{manifest}")),
    _r("blob-get", PULL, 200, _any("GET", "/v2/{name}/blobs/{blob}")),
    _r("blob-head", PULL, 200, _any("HEAD", "/v2/{name}/blobs/{blob}")),
    _r("blob-delete", DELETE, 202, _any("DELETE", "/v2/{name}/blobs/{blob}")),
    _r("upload-start", PUSH_, 202, _any("POST", "/v2/{name}/blobs/uploads/")),
    _r(
        "upload-monolithic",
        PUSH_,
        201,
        lambda c, n, s: c.post(
            f"/v2/{n}/blobs/uploads/", params={"digest": sha(b"mono")}, content=b"mono"
        ),
    ),
    _r("upload-status", PULL, 204, _any("GET", "{upload}")),
    _r("upload-patch", PUSH_, 202, _chunk),
    _r("upload-put", PUSH_, 201, _complete),
    _r("upload-cancel", PUSH_, 204, _any("DELETE", "{upload}")),
    _r("referrers", PULL, 200, _any("GET", "/v2/{name}/referrers/{manifest}")),
]
