"""`regtool serve` on a full disk: the client is told plainly, the log has one line (no
traceback), and nothing the failed writes began is left behind."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from regtool.storage.base import TEMP_MARK
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry
from tests.services.tmpfs import small_tmpfs

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _full_answer(resp: httpx.Response) -> None:
    assert resp.status_code == 507, resp.text
    (error,) = resp.json()["errors"]
    assert "no space left on device" in error["message"]


def test_a_full_disk_is_named_to_the_client_and_in_one_log_line(
    serve_registry: Callable[..., RunningRegistry],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with small_tmpfs(tmp_path / "disk", size=2 << 20) as disk:
        root = disk.path / "store"
        root.mkdir()
        reg = serve_registry(LocalDriver(root), root)
        with httpx.Client(base_url=reg.url, timeout=30) as client:
            config, layer = b'{"architecture":"amd64","os":"linux"}', b"tiny layer"
            for data in (config, layer):
                url = f"/v2/full/app/blobs/uploads/?digest={_digest(data)}"
                assert client.post(url, content=data).status_code == 201
            caplog.clear()
            with caplog.at_level(logging.ERROR, logger="regtool.server"):
                big = b"\1" * (3 << 20)  # more than the disk holds
                started = client.post("/v2/full/app/blobs/uploads/")
                location = started.headers["location"]
                _full_answer(client.put(f"{location}?digest={_digest(big)}", content=big))
                disk.fill()
                manifest = json.dumps(
                    {
                        "schemaVersion": 2,
                        "mediaType": OCI_MANIFEST,
                        "config": {
                            "mediaType": "application/vnd.oci.image.config.v1+json",
                            "digest": _digest(config),
                            "size": len(config),
                        },
                        "layers": [
                            {
                                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                                "digest": _digest(layer),
                                "size": len(layer),
                            }
                        ],
                    }
                ).encode()
                headers = {"Content-Type": OCI_MANIFEST}
                put = client.put("/v2/full/app/manifests/v1", content=manifest, headers=headers)
                _full_answer(put)
        failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(failures) == 2, [r.getMessage() for r in failures]
        for record in failures:
            assert record.exc_info is None  # an expected failure: no traceback
            assert "no space left on device" in record.getMessage()
        assert not [p for p in root.rglob(f"{TEMP_MARK}*")]
