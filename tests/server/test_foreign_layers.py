"""Manifest PUT and layers with `urls`, as distribution verifies them: only a
non-distributable (OCI) or foreign (Docker) layer that lists allowed URLs may be absent
from the repository; a config never; URLs are refused unless the configuration allows
them (distribution's `validation.manifests.urls`)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from regtool.errors import UsageError
from regtool.server.foreign_layers import (
    DOCKER_FOREIGN,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_NONDISTRIBUTABLE,
    OCI_NONDISTRIBUTABLE_GZIP,
    UrlPolicy,
)
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry
from tests.server.test_serve_cli import run_serve
from tests.services import free_port

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
URL = "https://mirror.example.com/layers/base.tar.gz"
ALLOW_EXAMPLE = UrlPolicy(allow=re.compile(r"^https://mirror\.example\.com/"))


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, urls: list[str] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"mediaType": media_type, "digest": sha(data), "size": len(data)}
    if urls is not None:
        d["urls"] = urls
    return d


def manifest(media_type: str, config: dict[str, Any], layers: list[dict[str, Any]]) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": media_type, "config": config, "layers": layers}
    return json.dumps(doc).encode()


def push_blob(client: httpx.Client, name: str, data: bytes) -> None:
    r = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": sha(data)}, content=data)
    assert r.status_code == 201, r.text


def put(client: httpx.Client, body: bytes, media_type: str) -> httpx.Response:
    return client.put("/v2/app/manifests/v1", content=body, headers={"Content-Type": media_type})


@pytest.fixture
def serve(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> Callable[[UrlPolicy | None], httpx.Client]:
    clients: list[httpx.Client] = []

    def make(policy: UrlPolicy | None) -> httpx.Client:
        root = tmp_path / f"store-{len(clients)}"
        reg = serve_registry(LocalDriver(root), root, foreign_urls=policy)
        clients.append(httpx.Client(base_url=reg.url, timeout=30))
        return clients[-1]

    yield make  # type: ignore[misc]
    for c in clients:
        c.close()


def test_absent_config_and_layer_with_urls_are_refused(
    serve: Callable[[UrlPolicy | None], httpx.Client],
) -> None:
    """What an attacker tried: nothing stored, each descriptor with `"urls": ["x"]`."""
    client = serve(None)
    config, layer = b'{"os":"linux"}', b"layer"
    body = manifest(
        OCI_MANIFEST, descriptor(OCI_CONFIG, config, ["x"]), [descriptor(OCI_LAYER, layer, ["x"])]
    )
    r = put(client, body, OCI_MANIFEST)
    assert r.status_code == 400, r.text
    error = r.json()["errors"][0]
    assert error["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert {d["digest"] for d in error["detail"]} == {sha(config), sha(layer)}
    assert client.get("/v2/app/manifests/v1").status_code == 404


@pytest.mark.parametrize(
    ("case", "manifest_type", "layer_type", "urls", "stored", "policy", "status"),
    [
        # non-distributable / foreign layers: absent when their URLs are allowed
        ("nondistributable", OCI_MANIFEST, OCI_NONDISTRIBUTABLE, [URL], False, ALLOW_EXAMPLE, 201),
        ("gzip", OCI_MANIFEST, OCI_NONDISTRIBUTABLE_GZIP, [URL], False, ALLOW_EXAMPLE, 201),
        ("docker foreign", DOCKER_MANIFEST, DOCKER_FOREIGN, [URL], False, ALLOW_EXAMPLE, 201),
        ("by default no URL", OCI_MANIFEST, OCI_NONDISTRIBUTABLE, [URL], False, None, 400),
        ("even when stored", OCI_MANIFEST, OCI_NONDISTRIBUTABLE, [URL], True, None, 400),
        ("docker by default", DOCKER_MANIFEST, DOCKER_FOREIGN, [URL], True, None, 400),
        ("without URLs", OCI_MANIFEST, OCI_NONDISTRIBUTABLE, None, False, ALLOW_EXAMPLE, 400),
        ("stored, no URLs", OCI_MANIFEST, OCI_NONDISTRIBUTABLE, None, True, None, 201),
        ("docker, no URLs", DOCKER_MANIFEST, DOCKER_FOREIGN, None, True, ALLOW_EXAMPLE, 400),
        ("another host", OCI_MANIFEST, OCI_NONDISTRIBUTABLE, ["https://x.org/l"], False,
         ALLOW_EXAMPLE, 400),
        ("denied", OCI_MANIFEST, OCI_NONDISTRIBUTABLE, [URL], False,
         UrlPolicy(allow=None, deny=re.compile("example")), 400),
        ("ftp", OCI_MANIFEST, OCI_NONDISTRIBUTABLE, ["ftp://mirror.example.com/l"], False,
         UrlPolicy(allow=None), 400),
        ("fragment", OCI_MANIFEST, OCI_NONDISTRIBUTABLE, [URL + "#x"], False,
         UrlPolicy(allow=None), 400),
        ("no validation", OCI_MANIFEST, OCI_NONDISTRIBUTABLE, [URL], False,
         UrlPolicy(allow=None), 201),
        # ordinary layers: always stored, their URLs checked all the same
        ("ordinary layer", OCI_MANIFEST, OCI_LAYER_GZIP, [URL], False, ALLOW_EXAMPLE, 400),
        ("ordinary, stored", OCI_MANIFEST, OCI_LAYER, [URL], True, ALLOW_EXAMPLE, 201),
        ("ordinary, bad URL", OCI_MANIFEST, OCI_LAYER, ["x"], True, ALLOW_EXAMPLE, 400),
        ("docker layer", DOCKER_MANIFEST, DOCKER_LAYER, [URL], False, ALLOW_EXAMPLE, 400),
        # a foreign type of the other format is an ordinary blob
        ("oci type in docker", DOCKER_MANIFEST, OCI_NONDISTRIBUTABLE, [URL], False,
         ALLOW_EXAMPLE, 400),
        ("docker type in oci", OCI_MANIFEST, DOCKER_FOREIGN, [URL], False, ALLOW_EXAMPLE, 400),
    ],
)  # fmt: skip
def test_which_layers_may_be_absent(
    serve: Callable[[UrlPolicy | None], httpx.Client],
    case: str,
    manifest_type: str,
    layer_type: str,
    urls: list[str] | None,
    stored: bool,
    policy: UrlPolicy | None,
    status: int,
) -> None:
    client = serve(policy)
    config, layer = b'{"os":"windows"}', f"layer {case}".encode()
    push_blob(client, "app", config)
    if stored:
        push_blob(client, "app", layer)
    config_type = OCI_CONFIG if manifest_type == OCI_MANIFEST else DOCKER_CONFIG
    body = manifest(
        manifest_type, descriptor(config_type, config), [descriptor(layer_type, layer, urls)]
    )
    r = put(client, body, manifest_type)
    assert r.status_code == status, (case, r.text)
    if status == 400:
        error = r.json()["errors"][0]
        assert error["code"] == "MANIFEST_BLOB_UNKNOWN"
        assert error["detail"] == [{"digest": sha(layer)}]
    else:
        assert client.get("/v2/app/manifests/v1").content == body


def test_config_with_allowed_urls_must_be_stored(
    serve: Callable[[UrlPolicy | None], httpx.Client],
) -> None:
    client = serve(UrlPolicy(allow=None))
    config, layer = b'{"os":"linux"}', b"layer"
    push_blob(client, "app", layer)
    body = manifest(
        OCI_MANIFEST,
        descriptor(OCI_CONFIG, config, [URL]),
        [descriptor(OCI_NONDISTRIBUTABLE, layer, [URL])],
    )
    r = put(client, body, OCI_MANIFEST)
    assert r.status_code == 400 and r.json()["errors"][0]["detail"] == [{"digest": sha(config)}]


def test_policy_from_a_distribution_config() -> None:
    nothing = UrlPolicy.from_config(None)
    assert nothing.refuses(URL) and nothing == UrlPolicy()
    assert UrlPolicy.from_config({"manifests": {"urls": {}}}).refuses(URL)
    for off in ({"disabled": True}, {"enabled": False, "disabled": True}):
        assert not UrlPolicy.from_config(off).refuses(URL)
        assert UrlPolicy.from_config(off).refuses("ftp://h/x")
    # distribution: enabled = enabled || !disabled
    assert UrlPolicy.from_config({"enabled": False}).refuses(URL)
    assert UrlPolicy.from_config({"enabled": True, "disabled": True}).refuses(URL)
    policy = UrlPolicy.from_config(
        {"manifests": {"urls": {"allow": ["^https://mirror\\.example\\.com/", "^http://a/"]}}}
    )
    assert not policy.refuses(URL) and not policy.refuses("http://a/x")
    assert policy.refuses("https://other.example.com/")
    policy = UrlPolicy.from_config({"manifests": {"urls": {"deny": ["\\.internal/"]}}})
    assert not policy.refuses(URL) and policy.refuses("https://h.internal/x")
    with pytest.raises(UsageError, match=r"validation\.manifests\.urls\.allow"):
        UrlPolicy.from_config({"manifests": {"urls": {"allow": ["("]}}})


def test_serve_takes_the_url_policy_from_its_config(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'root'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        "validation:\n  manifests:\n    urls:\n      allow:\n        - ^https://mirror\\.example\\.com/\n"
    )
    layer = b"windows base"

    def during(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            push_blob(client, "app", b"{}")
            for urls, status in (([URL], 201), (["https://elsewhere.org/l"], 400)):
                body = manifest(
                    DOCKER_MANIFEST,
                    descriptor(DOCKER_CONFIG, b"{}"),
                    [descriptor(DOCKER_FOREIGN, layer, urls)],
                )
                assert put(client, body, DOCKER_MANIFEST).status_code == status

    run_serve(["--config", str(config)], port, during)
