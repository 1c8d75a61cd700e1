"""A blob already in storage is trusted only if it has the size of the bytes being
stored: one cut short (a move that copies, killed half-way on an SFTP server that
refuses rename; a crash of another tool) is replaced by the next push of its digest,
whether chunked, monolithic or a manifest. A directory where a blob's data should be is
no blob at all."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from regtool.layout import v2_write
from regtool.oci import OCI_MANIFEST, Digest
from regtool.storage.base import Driver, Entry
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry
from tests.server.logwatch import LogWatch

SEGMENT = 1024  # Swift: blobs of a few KiB are large objects of several segments


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["local", "swift", "sftp-no-rename"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    if request.param == "local":
        driver: Driver = LocalDriver(tmp_path / "store")
    elif request.param == "swift":
        swift = request.getfixturevalue("swift_service")
        driver = swift.driver(f"stored-{uuid.uuid4().hex[:8]}", segment_size=SEGMENT)
    else:
        sshd = request.getfixturevalue("sshd_service").variant("-P posix-rename,rename")
        driver = sshd.driver(f"stored-{uuid.uuid4().hex[:8]}")
    yield driver
    driver.close()


def test_a_blob_cut_short_is_replaced_by_the_next_push(
    store: Driver, serve_registry: Callable[..., RunningRegistry]
) -> None:
    reg = serve_registry(store)
    layout = reg.layout
    chunked, monolithic = os.urandom(5000), os.urandom(4000)
    for data in (chunked, monolithic):
        digest = Digest.parse(sha(data))
        with store.writer(layout.blob_data(digest)) as w:
            w.write(data[: len(data) // 3])  # what a crash left
            w.commit()
    cut = store.large_object(layout.blob_data(Digest.parse(sha(chunked))))
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        location = client.post("/v2/app/blobs/uploads/").headers["Location"]
        assert client.patch(location, content=chunked[:3000]).status_code == 202
        r = client.put(location, params={"digest": sha(chunked)}, content=chunked[3000:])
        assert r.status_code == 201, r.text
        r = client.post(
            "/v2/app/blobs/uploads/", params={"digest": sha(monolithic)}, content=monolithic
        )
        assert r.status_code == 201, r.text
        for data in (chunked, monolithic):
            r = client.head(f"/v2/app/blobs/{sha(data)}")
            assert r.headers["Content-Length"] == str(len(data))
            assert client.get(f"/v2/app/blobs/{sha(data)}").content == data
            assert store.get(layout.blob_data(Digest.parse(sha(data)))) == data
    if cut is not None and cut.segment_set is not None:  # Swift: the cut object's segments
        assert list(store.walk(cut.segment_set)) == []


def test_a_blob_of_the_right_size_is_kept(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    """The same bytes pushed again are not moved over the blob stored (a reader of it
    is never cut): the upload is deleted and the blob stays the file it was."""
    reg = serve_registry(LocalDriver(tmp_path), tmp_path)
    data = os.urandom(2000)
    path = tmp_path / reg.layout.blob_data(Digest.parse(sha(data)))
    inodes = []
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        for _ in range(2):
            r = client.post("/v2/app/blobs/uploads/", params={"digest": sha(data)}, content=data)
            assert r.status_code == 201, r.text
            inodes.append(path.stat().st_ino)
    assert inodes[0] == inodes[1] and path.read_bytes() == data
    assert list(reg.driver.walk(reg.layout.uploads_dir("app"))) == []


def test_a_manifest_cut_short_is_replaced_by_the_next_push(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    reg = serve_registry(LocalDriver(tmp_path), tmp_path)
    layout = reg.layout
    config = b'{"os":"linux"}'
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        r = client.post("/v2/app/blobs/uploads/", params={"digest": sha(config)}, content=config)
        assert r.status_code == 201
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(config), "size": len(config)},
            "layers": [],
        }  # fmt: skip
        body = json.dumps(doc).encode()
        layout.driver.put(layout.blob_data(Digest.parse(sha(body))), body[:40])
        r = client.put("/v2/app/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201, r.text
        assert client.get("/v2/app/manifests/v1").content == body
    assert layout.driver.get(layout.blob_data(Digest.parse(sha(body)))) == body


def test_a_directory_where_blob_data_should_be_is_no_blob(
    local_registry: RunningRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """distribution's blob statter takes it for a corrupt store, not a blob of 0 bytes:
    404, nothing served, nothing logged as an error."""
    layout = local_registry.layout
    digest = Digest.parse(sha(b"never stored"))
    assert local_registry.root is not None
    (local_registry.root / layout.blob_data(digest) / "x").mkdir(parents=True)
    v2_write.write_link(layout, layout.layer_link("app", digest), digest)
    caplog.set_level(logging.INFO)
    with httpx.Client(base_url=local_registry.url, timeout=30) as client:
        r = client.get(f"/v2/app/blobs/{digest}")
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
        assert client.head(f"/v2/app/blobs/{digest}").status_code == 404
        r = client.post("/v2/other/blobs/uploads/", params={"mount": str(digest), "from": "app"})
        assert r.status_code == 202  # not mounted: an ordinary upload starts
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


def test_a_directory_where_manifest_data_should_be_is_no_manifest(
    local_registry: RunningRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """Likewise for a manifest's data: unknown, and left out of referrers."""
    layout = local_registry.layout
    digest = Digest.parse(sha(b"never stored"))
    assert local_registry.root is not None
    (local_registry.root / layout.blob_data(digest) / "x").mkdir(parents=True)
    v2_write.write_link(layout, layout.revision_link("app", digest), digest)
    v2_write.write_link(layout, layout.tag_current_link("app", "v1"), digest)
    caplog.set_level(logging.INFO)
    with httpx.Client(base_url=local_registry.url, timeout=30) as client:
        for ref in ("v1", str(digest)):
            r = client.get(f"/v2/app/manifests/{ref}")
            assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        assert client.get(f"/v2/app/referrers/{digest}").status_code == 200
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


class ShrinkingBlobs(LocalDriver):
    """Stats every blob's data 1000 bytes longer than it reads: a blob cut short between
    the stat that sized the answer and its read (no real store does this on demand)."""

    def stat(self, path: str) -> Entry:
        entry = super().stat(path)
        if path.endswith("/data") and "/blobs/" in path and entry.size is not None:
            return dataclasses.replace(entry, size=entry.size + 1000)
        return entry


def test_a_blob_that_reads_short_ends_its_answer_short_without_a_traceback(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    """The answer announced the stat's length: fewer bytes read closes the connection
    short of it (how HTTP says the body is incomplete), with one error line naming the
    cause (and uvicorn's own line that the answer was not completed)."""
    reg = serve_registry(ShrinkingBlobs(tmp_path), tmp_path)
    data = os.urandom(3000)
    with httpx.Client(base_url=reg.url, timeout=30) as client, LogWatch() as logs:
        r = client.post("/v2/app/blobs/uploads/", params={"digest": sha(data)}, content=data)
        assert r.status_code == 201, r.text
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(f"/v2/app/blobs/{sha(data)}")
        line = logs.wait_for("failed while answering")
        assert line.levelname == "ERROR" and "ended after 3000 of 4000 bytes" in line.getMessage()
        assert not any(r.exc_info for r in logs.records)
        uvicorn_says = "ERROR ASGI callable returned without completing response."
        assert [e for e in logs.errors() if "failed while answering" not in e] in (
            [],
            [uvicorn_says],
        )
