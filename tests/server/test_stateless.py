"""Two `regtool serve` processes (here: two apps) on one store act as one registry: an
upload started on one continues and completes on the other, from storage alone."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Driver, Driver]:
    return LocalDriver(tmp_path), LocalDriver(tmp_path)


def _swift(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Driver, Driver]:
    service = request.getfixturevalue("swift_service")
    container = f"stateless-{uuid.uuid4().hex[:8]}"
    return (
        service.driver(container, segment_size=64 * 1024),
        service.driver(container, segment_size=64 * 1024),
    )


@pytest.mark.parametrize("make", [_local, _swift], ids=["local", "swift"])
def test_upload_moves_between_servers(
    make: Callable[[pytest.FixtureRequest, Path], tuple[Driver, Driver]],
    request: pytest.FixtureRequest,
    tmp_path: Path,
    serve_registry: Callable[..., RunningRegistry],
) -> None:
    first, second = (serve_registry(d) for d in make(request, tmp_path))
    data = os.urandom(200_000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=first.url) as a, httpx.Client(base_url=second.url) as b:
        location = a.post("/v2/team/app/blobs/uploads/").headers["Location"]
        r = b.patch(location, content=data[:70_000], headers={"Content-Range": "0-69999"})
        assert r.status_code == 202 and r.headers["Range"] == "0-69999"
        r = a.patch(location, content=data[70_000:150_000])
        assert r.status_code == 202 and r.headers["Range"] == "0-149999"
        assert b.get(location).headers["Range"] == "0-149999"
        r = b.put(location, params={"digest": digest}, content=data[150_000:])
        assert r.status_code == 201, r.text
        blob = f"/v2/team/app/blobs/{digest}"
        assert a.get(blob).content == data
        r = b.get(blob, headers={"Range": "bytes=65530-65545"})
        assert r.status_code == 206 and r.content == data[65530:65546]
    for reg in (first, second):
        reg.driver.close()
