"""The storage page's long runs over HTTP, without a browser: reading the summary (a
listing of every repository, then gc's dry run) shows its step and counts while it runs,
and the last run's size as its end; a verification of the whole store is for those who
may pull every repository. Runs are held at a known point by a driver that waits."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from regtool.layout.detect import default_layout
from regtool.server.auth.guard import Guard
from regtool.server.auth.htpasswd import hash_password, write_entry
from regtool.server.settings import ServerSettings
from regtool.storage.base import Entry, Prune
from regtool.storage.local import LocalDriver
from regtool.ui.app import ui_routes
from regtool.ui.data import StoreView
from tests.v2store import write_image


class HeldWalks(LocalDriver):
    """Holds each walk of a directory ending in `held` (once its entries are listed)
    until `go` is set, saying so with `reached`."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.held = ""
        self.reached = threading.Event()
        self.go = threading.Event()

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        entries = list(super().walk(prefix, temporaries=temporaries, prune=prune))
        if self.held and prefix.endswith(self.held):
            self.reached.set()
            assert self.go.wait(20)
        return iter(entries)


def run_ui(
    view: StoreView, settings: ServerSettings, body: Callable[[httpx.AsyncClient], Awaitable[None]]
) -> None:
    guard = Guard(settings)
    app = guard.middleware(Starlette(routes=ui_routes(view, guard, writable=False)))

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
            await body(client)

    asyncio.run(main())


async def until(client: httpx.AsyncClient, path: str, state: str, **query: str) -> Any:
    """The JSON status at `path` once its state is `state` (polled; 20 s at most)."""
    for _ in range(400):
        doc = (await client.get(path, params=query)).json()
        if doc["state"] == state:
            return doc
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never reached {state}: {doc}")


def test_the_storage_summary_shows_its_progress_then_its_result(tmp_path: Path) -> None:
    driver = HeldWalks(tmp_path)
    layout = default_layout(driver)
    for name in ("a/one", "b/two"):
        write_image(layout, name, "1", layer=name.encode())
    view = StoreView(layout, str(tmp_path))

    async def body(client: httpx.AsyncClient) -> None:
        driver.held = "/blobs"  # gc's walk of blobs/, after every repository was listed
        page = (await client.get("/ui/storage")).text  # the first visit starts a run
        assert 'id="job"' in page and "<table" not in page
        assert await asyncio.to_thread(driver.reached.wait, 20)
        status = (await client.get("/ui/storage/status")).json()
        assert status["state"] == "running" and status["step"] == "gc --dry-run"
        assert status["listed"] > 10 and status["requests"] > 1
        assert status["expected"] == 0  # no run before this one: no end known
        page = (await client.get("/ui/storage")).text  # a second visit starts nothing
        assert 'id="job"' in page
        driver.go.set()
        first = await until(client, "/ui/storage/status", "done")
        page = (await client.get("/ui/storage")).text
        assert 'id="job"' not in page
        assert re.findall(r'name=([ab]%2F\w+)">', page) == ["a%2Fone", "b%2Ftwo"]
        assert "would free" in page and "Verify every tag of the store" in page

        # read again: the last run's counts are this one's expected end
        driver.reached.clear()
        driver.go.clear()
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None
        again = await client.post("/ui/storage", data={"csrf": token[1]})
        assert again.status_code == 303
        assert await asyncio.to_thread(driver.reached.wait, 20)
        status = (await client.get("/ui/storage/status")).json()
        assert status["state"] == "running"
        assert status["expected"] >= first["done"]
        page = (await client.get("/ui/storage")).text
        assert f'max="{status["expected"]}"' in page or 'max="' in page
        assert "a%2Fone" in page  # the last result stays shown meanwhile
        driver.go.set()
        await until(client, "/ui/storage/status", "done")

    run_ui(view, ServerSettings(), body)


def test_the_whole_store_is_verified_by_those_who_may_pull_all_of_it(tmp_path: Path) -> None:
    layout = default_layout(LocalDriver(tmp_path / "store"))
    write_image(layout, "team/app", "1", layer=b"app")
    broken = write_image(layout, "secret/keys", "1", layer=b"key")
    (tmp_path / "store" / layout.blob_data(broken.layers[0])).write_bytes(
        b"KEY"
    )  # same size, other bytes
    view = StoreView(layout, "store")
    htpasswd, access = tmp_path / "htpasswd", tmp_path / "access.yml"
    for user in ("alice", "bob"):
        write_entry(htpasswd, user, hash_password(user, cost=4))
    access.write_text(
        "rules:\n"
        "  - {repositories: ['**'], users: [alice], allow: [pull]}\n"
        "  - {repositories: ['team/*'], users: [bob], allow: [pull]}\n"
    )
    settings = ServerSettings(htpasswd=htpasswd, access=access)

    async def sign_in(client: httpx.AsyncClient, user: str) -> str:
        client.cookies.clear()
        form = (await client.get("/ui/login")).text
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        assert token is not None
        data = {"csrf": token[1], "user": user, "password": user}
        assert (await client.post("/ui/login", data=data)).status_code == 303
        page = (await client.get("/ui/storage")).text
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None
        return token[1]

    async def body(client: httpx.AsyncClient) -> None:
        token = await sign_in(client, "bob")  # whose first visit began reading the store
        assert "Verify every tag" not in (await client.get("/ui/storage")).text
        status = (await client.get("/ui/storage/status")).json()
        assert set(status) == {"state", "step"}  # no counts: how big the store is
        refused = await client.post("/ui/verify", data={"csrf": token, "all": "1"})
        assert refused.status_code == 403
        assert (await client.get("/ui/verify/status", params={"all": "1"})).status_code == 403

        token = await sign_in(client, "alice")
        started = await client.post("/ui/verify", data={"csrf": token, "all": "1"})
        assert started.status_code == 303 and started.headers["location"].endswith("all=1")
        done = await until(client, "/ui/verify/status", "problems", all="1")
        assert done["tags"] == 2 and done["done"] == done["expected"] > 0
        assert any(str(broken.layers[0]) in p for p in done["problems"]), done
        page = (await client.get("/ui/verify", params={"all": "1"})).text
        assert "Verify the whole store" in page and str(broken.layers[0]) in page

    run_ui(view, settings, body)
