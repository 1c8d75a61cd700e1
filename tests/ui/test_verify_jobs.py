"""Verifications started from the UI are bounded: none for a repository the store does
not hold (404), `VERIFYING_AT_ONCE` running at once (more are told "busy", 503), and
the last `VERIFICATIONS_KEPT` remembered. Runs are held by a driver that waits."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from regtool.layout.detect import default_layout
from regtool.server.settings import ServerSettings
from regtool.storage.base import Entry, Prune
from regtool.storage.local import LocalDriver
from regtool.ui import jobs
from regtool.ui.data import StoreView
from tests.ui.test_jobs import run_ui, until
from tests.v2store import write_image


class HeldRepositories(LocalDriver):
    """Holds each walk of a repository named in `held` until `go` is set; `reached`
    counts the walks held so far."""

    def __init__(self, root: Path, held: set[str]):
        super().__init__(root)
        self.held = held
        self.reached = threading.Semaphore(0)
        self.go = threading.Event()

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        entries = list(super().walk(prefix, temporaries=temporaries, prune=prune))
        if any(prefix.endswith(f"/repositories/{name}") for name in self.held):
            self.reached.release()
            assert self.go.wait(20)
        return iter(entries)


def test_verifications_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "VERIFICATIONS_KEPT", 2)
    driver = HeldRepositories(tmp_path, {"r1", "r2"})
    layout = default_layout(driver)
    for name in ("r1", "r2", "r3"):
        write_image(layout, name, "1", layer=name.encode())
    view = StoreView(layout, str(tmp_path))

    async def verify(client: httpx.AsyncClient, token: str, name: str) -> httpx.Response:
        return await client.post("/ui/verify", data={"csrf": token, "name": name})

    async def body(client: httpx.AsyncClient) -> None:
        page = (await client.get("/ui/repository", params={"name": "r3"})).text
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found is not None
        token = found[1]

        for name in ("nothere", "x/nothere"):
            assert (await verify(client, token, name)).status_code == 404
            r = await client.get("/ui/verify/status", params={"name": name})
            assert r.status_code == 404

        assert (await verify(client, token, "r1")).status_code == 303
        assert (await verify(client, token, "r2")).status_code == 303
        for _ in range(2):  # both under way, held
            assert await asyncio.to_thread(driver.reached.acquire, True, 20)
        busy = await verify(client, token, "r3")
        assert busy.status_code == 503 and "Busy" in busy.text
        assert busy.headers["retry-after"]
        status = await client.get("/ui/verify/status", params={"name": "r3"})
        assert status.json() == {"state": "none"}
        assert (await verify(client, token, "r1")).status_code == 303  # the one under way

        driver.go.set()
        for name in ("r1", "r2"):
            await until(client, "/ui/verify/status", "ok", name=name)
        assert (await verify(client, token, "r3")).status_code == 303
        await until(client, "/ui/verify/status", "ok", name="r3")
        # two remembered: r1's, the oldest, is dropped
        r1 = await client.get("/ui/verify/status", params={"name": "r1"})
        assert r1.json() == {"state": "none"}
        await until(client, "/ui/verify/status", "ok", name="r2")

    try:
        run_ui(view, ServerSettings(), body)
    finally:
        view.close()
