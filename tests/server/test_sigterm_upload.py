"""SIGTERM while a 200 MiB upload streams in: the server waits `http.draintimeout` for
it, cuts it short, exits 0, and a new server on the same store takes the upload up
from the last chunk it completed."""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.server.serve_proc import answers, start_serve, stop_serve
from tests.services import free_port

MiB = 1 << 20
TOTAL = 200 * MiB
FIRST = 8 * MiB


def block(i: int) -> bytes:
    return bytes([i % 251]) * MiB


def start(cfg: Path, port: int) -> subprocess.Popen[str]:
    return start_serve(["--config", str(cfg)], answers(f"http://127.0.0.1:{port}"))


def test_sigterm_mid_upload_exits_0_and_the_upload_resumes(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {tmp_path / 's'}}}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  draintimeout: 1s\n"
    )
    url = f"http://127.0.0.1:{port}"
    digest = hashlib.sha256()
    for i in range(TOTAL // MiB):
        digest.update(block(i))
    proc = start(cfg, port)
    sent_some, stop_sending = threading.Event(), threading.Event()
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            location = client.post("/v2/big/blobs/uploads/").headers["Location"]
            first = b"".join(block(i) for i in range(FIRST // MiB))
            r = client.patch(location, content=first)
            assert r.status_code == 202 and r.headers["Range"] == f"0-{FIRST - 1}"

            def rest() -> Iterator[bytes]:
                for i in range(FIRST // MiB, TOTAL // MiB):
                    if i == FIRST // MiB + 16:
                        sent_some.set()
                        stop_sending.wait(30)  # a client that stalls mid-body
                        return
                    yield block(i)

            answers: list[object] = []

            def stalled_patch() -> None:
                try:
                    answers.append(client.patch(location, content=rest()).status_code)
                except httpx.HTTPError as e:
                    answers.append(e)

            sender = threading.Thread(target=stalled_patch)
            sender.start()
            assert sent_some.wait(30)
            stopped_at = time.monotonic()
            out = stop_serve(proc)
            took = time.monotonic() - stopped_at
            stop_sending.set()
            sender.join(30)
        assert took < 10, out  # the drain timeout (1 s), not the stalled client, ends it
        assert answers and answers[0] != 202

        proc = start(cfg, port)
        with httpx.Client(base_url=url, timeout=60) as client:
            r = client.get(location)
            assert r.status_code == 204 and r.headers["Range"] == f"0-{FIRST - 1}"

            def remainder() -> Iterator[bytes]:
                for i in range(FIRST // MiB, TOTAL // MiB):
                    yield block(i)

            r = client.patch(location, content=remainder())
            assert r.status_code == 202 and r.headers["Range"] == f"0-{TOTAL - 1}"
            blob = f"sha256:{digest.hexdigest()}"
            assert client.put(location, params={"digest": blob}).status_code == 201
            r = client.head(f"/v2/big/blobs/{blob}")
            assert r.status_code == 200 and r.headers["Content-Length"] == str(TOTAL)
    finally:
        stop_sending.set()
        stop_serve(proc)
