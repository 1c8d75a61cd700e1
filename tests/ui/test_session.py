"""A UI session lasts no longer than what it stands for: removing a user from the
htpasswd file or changing their password ends the sessions they signed in with (as it
ends their API access), and so does signing out, for every copy of the cookie."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from regtool.layout.detect import default_layout
from regtool.layout.v2 import V2Layout
from regtool.server.auth.guard import Guard
from regtool.server.auth.htpasswd import hash_password, write_entry
from regtool.server.settings import ServerSettings
from regtool.storage.local import LocalDriver
from regtool.ui import session as sessions
from regtool.ui.app import ui_routes
from regtool.ui.data import StoreView
from regtool.ui.session import COOKIE, SessionSigner
from tests.v2store import write_image

RULES = "rules:\n  - {repositories: ['x/**'], users: [mallory, bob], allow: [pull, delete]}\n"


class Store:
    """A store with x/tmp:1 and x/tmp:2, and the UI of a registry that takes deletes,
    for users mallory and bob (pull and delete on x/**)."""

    def __init__(self, tmp_path: Path):
        self.layout: V2Layout = default_layout(LocalDriver(tmp_path / "store"))
        for tag in ("1", "2"):
            write_image(self.layout, "x/tmp", tag, layer=tag.encode())
        self.htpasswd, access = tmp_path / "htpasswd", tmp_path / "access.yml"
        for user in ("mallory", "bob"):
            write_entry(self.htpasswd, user, hash_password(f"{user}-pw", cost=4))
        access.write_text(RULES)
        self.settings = ServerSettings(htpasswd=self.htpasswd, access=access)

    def tags(self) -> list[str]:
        return sorted(self.layout.scan_repositories("x/tmp")["x/tmp"].tags)

    def run(self, body: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
        guard = Guard(self.settings)
        view = StoreView(self.layout, "store")
        app = guard.middleware(Starlette(routes=ui_routes(view, guard, writable=True)))

        async def main() -> None:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
                await body(client)

        try:
            asyncio.run(main())
        finally:
            view.close()


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page
    return found[1]


async def sign_in(client: httpx.AsyncClient, user: str, password: str) -> str:
    """Signs `user` in; the session cookie kept by `client`."""
    client.cookies.clear()
    token = csrf((await client.get("/ui/login")).text)
    data = {"csrf": token, "user": user, "password": password}
    assert (await client.post("/ui/login", data=data)).status_code == 303
    cookie = str(client.cookies[COOKIE])
    assert f"<strong>{user}</strong>" in (await client.get("/ui/")).text
    return cookie


async def delete_with(client: httpx.AsyncClient, cookie: str, token: str, tag: str) -> int:
    """A delete of x/tmp:`tag` confirmed with a kept cookie and its form's token."""
    client.cookies.clear()
    form = {"csrf": token, "name": "x/tmp", "tag": tag, "confirm": "yes"}
    r = await client.post("/ui/delete", data=form, cookies={COOKIE: cookie})
    return r.status_code


def test_a_removed_user_is_signed_out_and_deletes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)

    async def body(client: httpx.AsyncClient) -> None:
        kept = await sign_in(client, "mallory", "mallory-pw")
        token = csrf((await client.get("/ui/repository", params={"name": "x/tmp"})).text)
        write_entry(store.htpasswd, "mallory", None)  # `regtool htpasswd rm mallory`

        assert await delete_with(client, kept, token, "1") == 403
        client.cookies.clear()
        page = (await client.get("/ui/", cookies={COOKIE: kept})).text
        assert "mallory" not in page and "Sign in" in page
        # bob, still in the file, stays signed in
        bob = await sign_in(client, "bob", "bob-pw")
        client.cookies.clear()
        assert "<strong>bob</strong>" in (await client.get("/ui/", cookies={COOKIE: bob})).text

    store.run(body)
    assert store.tags() == ["1", "2"]


def test_a_changed_password_ends_the_sessions_made_with_the_old_one(tmp_path: Path) -> None:
    store = Store(tmp_path)

    async def body(client: httpx.AsyncClient) -> None:
        kept = await sign_in(client, "mallory", "mallory-pw")
        token = csrf((await client.get("/ui/repository", params={"name": "x/tmp"})).text)
        write_entry(store.htpasswd, "mallory", hash_password("new-pw", cost=4))

        assert await delete_with(client, kept, token, "1") == 403
        client.cookies.clear()
        assert "mallory" not in (await client.get("/ui/", cookies={COOKIE: kept})).text
        # signed in with the new password, deletes work
        fresh = await sign_in(client, "mallory", "new-pw")
        token = csrf((await client.get("/ui/repository", params={"name": "x/tmp"})).text)
        assert await delete_with(client, fresh, token, "2") == 303

    store.run(body)
    assert store.tags() == ["1"]


def test_signing_out_ends_every_copy_of_the_cookie(tmp_path: Path) -> None:
    store = Store(tmp_path)

    async def body(client: httpx.AsyncClient) -> None:
        kept = await sign_in(client, "bob", "bob-pw")
        token = csrf((await client.get("/ui/")).text)
        assert (await client.post("/ui/logout", data={"csrf": token})).status_code == 303
        assert "Sign in" in (await client.get("/ui/")).text

        assert await delete_with(client, kept, token, "1") == 403
        page = (await client.get("/ui/", cookies={COOKIE: kept})).text
        assert "<strong>bob</strong>" not in page and "Sign in" in page
        # a session of his own signed in again is not ended with the old one
        again = await sign_in(client, "bob", "bob-pw")
        client.cookies.clear()
        assert "<strong>bob</strong>" in (await client.get("/ui/", cookies={COOKIE: again})).text

    store.run(body)
    assert store.tags() == ["1", "2"]


def test_the_record_of_ended_sessions_is_bounded_and_forgets_none_too_early(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sessions, "ENDED_KEPT", 3)
    signer = SessionSigner(credential=lambda user: "hash")
    now = int(time.time())
    made = [replace(signer.new("bob", "hash"), issued=now - 100 + i) for i in range(6)]
    cookies = [signer.dump(s) for s in made]
    assert all(signer.load(c) is not None for c in cookies)
    expired = replace(signer.new("bob", "hash"), issued=now - sessions.LIFETIME - 10)
    for session in (expired, made[4], made[1], made[2], made[0]):
        signer.end(session)
    assert len(signer._ended) <= 3
    # made[1] was forgotten to stay in bounds: every session issued up to it ended with it
    assert [signer.load(c) is None for c in cookies] == [True, True, True, False, True, False]
