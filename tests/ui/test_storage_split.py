"""The storage page's split of each repository's bytes into "only here" and "shared"
counts only the repositories the viewer may pull: bob's image copied into secret/*
(which he may not see) is still his repository's own, so the page does not tell him
that a hidden repository holds it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from regtool.layout.detect import default_layout
from regtool.server.auth.htpasswd import hash_password, write_entry
from regtool.server.settings import ServerSettings
from regtool.storage.local import LocalDriver
from regtool.ui.data import Holdings, RepositoryTotals, StoreView
from tests.ui.test_jobs import run_ui, until
from tests.v2store import write_image


def test_the_split_is_over_the_repositories_the_viewer_may_pull(tmp_path: Path) -> None:
    layout = default_layout(LocalDriver(tmp_path / "store"))
    for name in ("app/solo", "secret/copy"):
        write_image(layout, name, "1", layer=b"the same image")
    write_image(layout, "app/other", "1", layer=b"another")
    view = StoreView(layout, "store")
    htpasswd, access = tmp_path / "htpasswd", tmp_path / "access.yml"
    for user in ("alice", "bob"):
        write_entry(htpasswd, user, hash_password(user, cost=4))
    access.write_text(
        "rules:\n"
        "  - {repositories: ['**'], users: [alice], allow: [pull]}\n"
        "  - {repositories: ['app/*'], users: [bob], allow: [pull]}\n"
    )

    async def row(client: httpx.AsyncClient, user: str) -> tuple[str, str]:
        client.cookies.clear()
        token = re.search(r'name="csrf" value="([^"]+)"', (await client.get("/ui/login")).text)
        assert token is not None
        data = {"csrf": token[1], "user": user, "password": user}
        assert (await client.post("/ui/login", data=data)).status_code == 303
        await client.get("/ui/storage")  # the first visit starts reading
        await until(client, "/ui/storage/status", "done")
        page = (await client.get("/ui/storage")).text
        found = re.search(
            r'>app/solo</a></td><td class="num">([^<]*)</td><td class="num">([^<]*)</td>', page
        )
        assert found is not None, page
        assert ("secret/copy" in page) == (user == "alice")
        return found[1], found[2]

    async def body(client: httpx.AsyncClient) -> None:
        # every image here has the same config: app/other shares it with app/solo
        alice, bob = await row(client, "alice"), await row(client, "bob")
        assert alice[0] == "0 B"
        assert bob[0] == f"{len(b'the same image')} B"  # the layer: only here, as bob sees it
        assert alice[1] != bob[1]

    try:
        run_ui(view, ServerSettings(htpasswd=htpasswd, access=access), body)
    finally:
        view.close()


def test_holdings_split_bytes_among_the_visible_repositories() -> None:
    holdings = Holdings(
        {"a": frozenset({"x", "y"}), "b": frozenset({"y", "z"}), "hidden": frozenset({"x"})},
        {"x": 1, "y": 10, "z": 100},
    )
    assert holdings.totals(lambda name: True) == [
        RepositoryTotals("a", 0, 11),
        RepositoryTotals("b", 100, 10),
        RepositoryTotals("hidden", 0, 1),
    ]
    assert holdings.totals(lambda name: name != "hidden") == [
        RepositoryTotals("a", 1, 10),
        RepositoryTotals("b", 100, 10),
    ]
