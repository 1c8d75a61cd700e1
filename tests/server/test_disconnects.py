"""A client that goes away in the middle of its request body is a normal event: one info
line, no traceback, and what the request wrote is taken away (the upload as it was, its
lease free for the next request)."""

from __future__ import annotations

import hashlib
import socket

import httpx
import pytest

from tests.server.conftest import RunningRegistry
from tests.server.logwatch import LogWatch

COMMITTED = b"c" * 100


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def cut_short(registry: RunningRegistry, head: str, sent: bytes) -> None:
    """Send `head` and `sent`, part of the body it announces, then close the connection."""
    host, port = registry.host.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + sent)


@pytest.mark.parametrize(
    "request_kind", ["PATCH", "PUT", "monolithic POST", "manifest PUT", "PATCH past 1 MiB"]
)
def test_client_gone_mid_body_is_one_info_line(
    local_registry: RunningRegistry, request_kind: str
) -> None:
    reg = local_registry
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        location = client.post("/v2/app/blobs/uploads/").headers["Location"]
        assert client.patch(location, content=COMMITTED).status_code == 202
        upload_id = location.rsplit("/", 1)[1]
        body = b"x" * (3 << 20 if request_kind == "PATCH past 1 MiB" else 1000)
        target, method = location, "PATCH"
        if request_kind == "PUT":
            target, method = f"{location}?digest={sha(COMMITTED + body)}", "PUT"
        elif request_kind == "monolithic POST":
            target, method = f"/v2/app/blobs/uploads/?digest={sha(body)}", "POST"
        elif request_kind == "manifest PUT":
            target, method = "/v2/app/manifests/v1", "PUT"
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {reg.host}\r\n"
            f"Content-Type: application/vnd.oci.image.manifest.v1+json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        with LogWatch() as logs:
            cut_short(reg, head, body[: len(body) // 2])
            line = logs.wait_for("disconnected before the end of its request")
            assert line.levelname == "INFO" and line.exc_info is None
            assert logs.errors() == []
        # the upload holds what it held, and its lease is free
        assert client.get(location).headers["Range"] == f"0-{len(COMMITTED) - 1}"
        assert reg.driver.get(reg.layout.upload_data("app", upload_id)) == COMMITTED
        rest = b"r" * 10
        r = client.put(location, params={"digest": sha(COMMITTED + rest)}, content=rest)
        assert r.status_code == 201, r.text
    if request_kind == "monolithic POST":
        # the monolithic upload went with its request
        assert list(reg.driver.walk(reg.layout.uploads_dir("app"))) == []
