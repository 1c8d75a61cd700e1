"""A layer pushed to distribution by its sha512 digest: distribution stores the data under
the sha256 digest and links the sha512 digest to it (an alias), and serves the sha512
digest through that link. gc keeps the data, verify follows the link, and `regtool serve`
serves and mounts the blob as distribution does, on the store distribution wrote."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from regtool.layout.v2 import FILESYSTEM_ROOT, V2Layout
from regtool.oci import OCI_MANIFEST, Digest
from regtool.storage.local import LocalDriver
from tests.gc.scenario import eligible
from tests.server.conftest import start_registry

pytestmark = pytest.mark.interop


def push_blob(client: httpx.Client, repo: str, data: bytes, digest: str) -> None:
    """A monolithic upload (POST, then PUT with the body) of `data` as `digest`."""
    started = client.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = httpx.URL(started.headers["Location"])  # keeps distribution's `_state`
    done = client.put(location.copy_add_param("digest", digest), content=data)
    assert done.status_code == 201, done.text


class Pushed:
    """app:1, an OCI image whose layer distribution got as `sha512:<hex>`."""

    def __init__(self, client: httpx.Client) -> None:
        self.layer = os.urandom(3000)
        self.sha512 = Digest.of(self.layer, "sha512")
        self.sha256 = Digest.of(self.layer)
        config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}'
        self.config = Digest.of(config)
        push_blob(client, "app", config, str(self.config))
        push_blob(client, "app", self.layer, str(self.sha512))
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": str(self.config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": str(self.sha512),
                    "size": len(self.layer),
                }
            ],
        }
        put = client.put(
            "/v2/app/manifests/1",
            content=json.dumps(manifest).encode(),
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert put.status_code == 201, put.text
        self.manifest = Digest.parse(put.headers["Docker-Content-Digest"])


@pytest.fixture
def dist(distribution_fs: Any) -> Iterator[tuple[Any, httpx.Client, Pushed]]:
    with httpx.Client(base_url=distribution_fs.url, timeout=30) as client:
        yield distribution_fs, client, Pushed(client)


def test_distribution_stores_an_alias(dist: tuple[Any, httpx.Client, Pushed]) -> None:
    fs, client, pushed = dist
    layout = V2Layout(LocalDriver(fs.root), FILESYSTEM_ROOT)
    assert (fs.root / layout.blob_data(pushed.sha256)).read_bytes() == pushed.layer
    assert not (fs.root / layout.blob_data(pushed.sha512)).exists()
    alias = fs.root / layout.layer_link("app", pushed.sha512)
    assert alias.read_bytes() == str(pushed.sha256).encode()
    assert layout.resolve_blob("app", pushed.sha512) == pushed.sha256
    assert layout.resolve_blob("app", pushed.sha256) == pushed.sha256
    assert client.get(f"/v2/app/blobs/{pushed.sha512}").content == pushed.layer
    # distribution's own gc would delete the data the alias reaches
    assert str(pushed.sha256) in eligible(fs.registry.garbage_collect(dry_run=True))


def test_gc_keeps_the_data_an_alias_reaches(
    cli: Any, dist: tuple[Any, httpx.Client, Pushed]
) -> None:
    fs, client, pushed = dist
    args = ("gc", "-l", str(fs.root), "--min-age", "0", "--settle", "0", "--delete-untagged")
    plan = cli.json(*args, "--dry-run")
    assert plan["objects"] == [] and plan["warnings"] == []
    done = cli.json(*args)
    assert done["objects"] == []
    layout = V2Layout(LocalDriver(fs.root), FILESYSTEM_ROOT)
    assert (fs.root / layout.blob_data(pushed.sha256)).exists()
    assert (fs.root / layout.layer_link("app", pushed.sha256)).exists()
    pulled = client.get(f"/v2/app/blobs/{pushed.sha512}")
    assert pulled.status_code == 200 and pulled.content == pushed.layer

    # Untagged, the image goes whole: the alias, its data and the canonical link.
    assert client.delete(f"/v2/app/manifests/{pushed.manifest}").status_code == 202
    done = cli.json(*args)
    gone = {(o["kind"], o["name"]) for o in done["objects"]}
    assert {
        ("layer-link", str(pushed.sha512)),
        ("layer-link", str(pushed.sha256)),
        ("blob", str(pushed.sha256)),
    } <= gone
    assert not (fs.root / layout.blob_data(pushed.sha256)).exists()
    assert not (fs.root / layout.layer_link("app", pushed.sha512)).exists()


def test_verify_follows_the_alias(cli: Any, dist: tuple[Any, httpx.Client, Pushed]) -> None:
    fs, client, pushed = dist
    for args in (("app:1",), ("--all",), ("--all", "--blobs"), ("--quick", "app:1")):
        result = cli("verify", "-l", str(fs.root), *args, "--json")
        assert result.exit_code == 0, result.stdout
        doc = json.loads(result.stdout)
        assert doc["totals"]["problems"] == 0 and doc["totals"]["ok"] >= 1

    # distribution serves the alias through the sha256 digest's link: without it, 500
    layout = V2Layout(LocalDriver(fs.root), FILESYSTEM_ROOT)
    canonical = fs.root / layout.layer_link("app", pushed.sha256)
    canonical.unlink()
    assert client.get(f"/v2/app/blobs/{pushed.sha512}").status_code == 500
    result = cli("verify", "-l", str(fs.root), "app:1", "--json")
    assert result.exit_code == 1
    (found,) = json.loads(result.stdout)["results"]
    assert [(p["object"], p["kind"]) for p in found["problems"]] == [
        (str(pushed.sha512), "unlinked")
    ]
    assert "is stored as sha256:" in found["problems"][0]["detail"]
    canonical.write_bytes(str(pushed.sha256).encode())

    # The data behind the alias is checked with the reference's algorithm: bytes that
    # keep the size but not the content are found.
    data = fs.root / layout.blob_data(pushed.sha256)
    data.write_bytes(bytes(len(pushed.layer)))
    doc = json.loads(cli("verify", "-l", str(fs.root), "app:1", "--json").stdout)
    (result,) = doc["results"]
    assert [(p["object"], p["kind"]) for p in result["problems"]] == [
        (str(pushed.sha512), "digest")
    ]


def test_serve_follows_the_alias(dist: tuple[Any, httpx.Client, Pushed]) -> None:
    fs, client, pushed = dist
    reg = start_registry(LocalDriver(fs.root), fs.root)
    try:
        with httpx.Client(base_url=reg.url, timeout=30) as ours:
            head = ours.head(f"/v2/app/blobs/{pushed.sha512}")
            assert head.status_code == 200
            assert head.headers["Content-Length"] == str(len(pushed.layer))
            got = ours.get(f"/v2/app/blobs/{pushed.sha512}")
            assert got.status_code == 200 and got.content == pushed.layer
            part = ours.get(f"/v2/app/blobs/{pushed.sha512}", headers={"Range": "bytes=10-19"})
            assert part.status_code == 206 and part.content == pushed.layer[10:20]
            manifest = ours.get(
                f"/v2/app/manifests/{pushed.manifest}", headers={"Accept": OCI_MANIFEST}
            )
            assert manifest.status_code == 200
            assert hashlib.sha256(manifest.content).hexdigest() == pushed.manifest.hex

            # A mount from `app` links the alias into `other`, where distribution serves it
            mounted = ours.post(
                "/v2/other/blobs/uploads/", params={"mount": str(pushed.sha512), "from": "app"}
            )
            assert mounted.status_code == 201, mounted.text
    finally:
        reg.stop()
    theirs = client.get(f"/v2/other/blobs/{pushed.sha512}")
    assert theirs.status_code == 200 and theirs.content == pushed.layer
