"""A stopping server waits a bounded time for requests under way (`--shutdown-timeout`),
then cuts them short: a stalled upload's request answers 503 if it can, what it wrote is
taken away and its lease released, so the upload goes on from what it held before, and
nothing logs a traceback."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from regtool.layout.v2 import V2Layout
from regtool.server.http import IO_CHUNK
from regtool.server.upload_store import UploadSession, UploadStore
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry
from tests.server.logwatch import LogWatch

COMMITTED = b"c" * 100


class WriteSeen(UploadStore):
    """An upload store whose sessions set `written` once an append returned."""

    def __init__(self, layout: V2Layout):
        super().__init__(layout)
        self.written = threading.Event()

    def open(self, name: str, upload_id: str) -> UploadSession:
        session = super().open(name, upload_id)
        write = session.write

        def noted_write(data: bytes) -> None:
            write(data)
            self.written.set()

        session.write = noted_write  # type: ignore[method-assign]
        return session


def test_stalled_upload_is_cut_short_by_shutdown_and_stays_resumable(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    root = tmp_path / "store"
    root.mkdir()
    stores: list[WriteSeen] = []

    def uploads(layout: V2Layout) -> UploadStore:
        stores.append(WriteSeen(layout))
        return stores[0]

    reg = serve_registry(LocalDriver(root), root, uploads=uploads, shutdown_grace=1)
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        location = httpx.URL(client.post("/v2/app/blobs/uploads/").headers["Location"]).path
        assert client.patch(location, content=COMMITTED).status_code == 202
    upload_id = location.rsplit("/", 1)[1]
    stores[0].written.clear()

    # A PATCH that sends more than one write's worth of its body, then stalls.
    host, port = reg.host.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as stalled, LogWatch() as logs:
        announced = 2 * IO_CHUNK + 1000
        stalled.sendall(
            f"PATCH {location} HTTP/1.1\r\nHost: {reg.host}\r\n"
            f"Content-Length: {announced}\r\n\r\n".encode()
            + b"x" * (IO_CHUNK + 10)
        )
        assert stores[0].written.wait(30)  # an append landed, uncommitted

        reg.server.should_exit = True  # what Ctrl-C does
        reg.thread.join(timeout=20)
        assert not reg.thread.is_alive(), "the server waited for the stalled client"
        answer = stalled.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        logs.wait_for("cut short: the server is stopping")
        assert [line for line in logs.errors() if "Cancel 1 running task" not in line] == []
        assert not any(r.exc_info for r in logs.records)

    # The upload holds what it held, and its lease is free: a new server completes it.
    assert (reg.layout.driver.get(reg.layout.upload_data("app", upload_id))) == COMMITTED
    again = serve_registry(LocalDriver(root), root)
    rest = b"r" * 10
    digest = "sha256:" + hashlib.sha256(COMMITTED + rest).hexdigest()
    with httpx.Client(base_url=again.url, timeout=30) as client:
        r = client.put(location, params={"digest": digest}, content=rest)
        assert r.status_code == 201, r.text
        assert client.get(f"/v2/app/blobs/{digest}").content == COMMITTED + rest
