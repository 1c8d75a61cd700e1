"""The UI's pages over HTTP, without a browser: the catalog reads only the repositories
on its page, every answer carries the security headers, a session cookie signed by
anyone else is nobody's, tags sort by name, date and size."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from regtool.layout.detect import default_layout
from regtool.storage.local import LocalDriver
from regtool.ui.app import SECURITY_HEADERS
from regtool.ui.data import PAGE_SIZE
from regtool.ui.session import COOKIE, SessionSigner
from tests.server.conftest import RunningRegistry, serve_registry
from tests.v2store import write_image

__all__ = ["serve_registry"]


def names_on(page: str) -> list[str]:
    return re.findall(r'<a href="/ui/repository\?name=[^"]*">([^<]+)</a>', page)


def test_the_catalog_reads_only_the_repositories_on_its_page(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    layout = default_layout(LocalDriver(tmp_path))
    images = [write_image(layout, f"r{i:02d}", "1", layer=b"x" * i) for i in range(PAGE_SIZE + 10)]
    # the manifest of a repository on page 2 is gone: only reading it in detail tells
    (tmp_path / layout.blob_data(images[PAGE_SIZE + 5].manifest)).unlink()
    reg = serve_registry(LocalDriver(tmp_path), tmp_path)
    first = httpx.get(f"{reg.url}/ui/").text
    assert names_on(first) == [f"r{i:02d}" for i in range(PAGE_SIZE)]
    assert 'class="warning"' not in first
    assert re.search(r"Page 1( of 2)?</span>", first)  # "of 2" once every name is listed
    second = httpx.get(f"{reg.url}/ui/", params={"page": "2"}).text
    assert names_on(second) == [f"r{i:02d}" for i in range(PAGE_SIZE, PAGE_SIZE + 10)]
    assert re.search(rf'class="warning">r{PAGE_SIZE + 5}:.*missing from blob storage', second)
    filtered = httpx.get(f"{reg.url}/ui/", params={"q": "R5"}).text  # case-insensitive
    assert names_on(filtered) == [f"r5{i}" for i in range(10)]


def test_every_answer_carries_the_security_headers(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    write_image(default_layout(LocalDriver(tmp_path)), "app", "1")
    reg = serve_registry(LocalDriver(tmp_path), tmp_path)
    with httpx.Client(base_url=reg.url) as client:
        answers = [
            client.get("/ui/"),
            client.get("/ui/repository", params={"name": "app"}),
            client.get("/ui/repository", params={"name": "no/such"}),
            client.get("/ui/repository", params={"name": "Not A Name"}),
            client.get("/ui/image", params={"name": "app", "ref": "sha256:" + "0" * 64}),
            client.get("/ui/login"),
            client.post("/ui/delete", data={"name": "app", "tag": "1"}),
            client.get("/ui/static/ui.js"),
            client.get("/ui/static/nothing.js"),
        ]
    assert [a.status_code for a in answers] == [200, 200, 404, 404, 404, 404, 403, 200, 404]
    for answer in answers:
        for header, value in SECURITY_HEADERS.items():
            assert answer.headers[header] == value
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    cookie = answers[0].headers["set-cookie"].lower()  # the first visit's session
    assert cookie.startswith(COOKIE) and "httponly" in cookie and "samesite=strict" in cookie
    assert "path=/ui" in cookie
    assert all("set-cookie" not in a.headers for a in answers[1:])  # kept, not replaced


def test_a_session_signed_by_another_key_is_nobodys(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    from regtool.server.auth.htpasswd import hash_password, write_entry
    from regtool.server.settings import ServerSettings

    write_image(default_layout(LocalDriver(tmp_path / "store")), "app", "1")
    htpasswd = tmp_path / "htpasswd"
    write_entry(htpasswd, "alice", hash_password("pw", cost=4))
    reg = serve_registry(
        LocalDriver(tmp_path / "store"), settings=ServerSettings(htpasswd=htpasswd)
    )
    forged = SessionSigner(os.urandom(32))
    cookie = forged.dump(forged.new("alice"))
    body, _, mac = cookie.rpartition(".")
    for value in (cookie, body + "." + mac[::-1], body, "x.y", ""):
        page = httpx.get(f"{reg.url}/ui/", cookies={COOKIE: value})
        assert "Signed in as" not in page.text
        assert names_on(page.text) == []
    with httpx.Client(base_url=reg.url) as client:
        form = client.get("/ui/login").text
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        assert token is not None
        signed = client.post(
            "/ui/login", data={"csrf": token[1], "user": "alice", "password": "pw"}
        )
        assert signed.status_code == 303
        page = client.get("/ui/").text
        assert "Signed in as <strong>alice</strong>" in page
        assert names_on(page) == ["app"]


def test_tags_sort_by_name_date_and_size(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    layout = default_layout(LocalDriver(tmp_path))
    for tag, size, age in (("b", 30, 100), ("a", 10, 300), ("c", 20, 200)):
        write_image(layout, "app", tag, layer=tag.encode() * size)
        link = tmp_path / layout.tag_current_link("app", tag)
        os.utime(link, (time.time() - age, time.time() - age))
    reg = serve_registry(LocalDriver(tmp_path), tmp_path)

    def order(**query: str) -> list[str]:
        page = httpx.get(f"{reg.url}/ui/repository", params={"name": "app", **query}).text
        return re.findall(r'ref=[a-c]">([a-c])</a>', page)

    assert order() == ["a", "b", "c"]
    assert order(sort="name", order="desc") == ["c", "b", "a"]
    assert order(sort="pushed") == ["b", "c", "a"]  # newest first
    assert order(sort="size", order="asc") == ["a", "c", "b"]
    assert order(sort="anything") == ["a", "b", "c"]


def test_with_token_auth_the_ui_shows_what_the_token_grants(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    from regtool.server.settings import ServerSettings, TokenSettings
    from tests.services.certs import self_signed
    from tests.services.token_issuer import ISSUER, SERVICE, TokenSigner

    layout = default_layout(LocalDriver(tmp_path / "store"))
    for name in ("team/app", "team/other", "secret/keys"):
        write_image(layout, name, "1")
    signer = TokenSigner(self_signed(tmp_path / "signer", "token signer", rsa_key=True))
    token = TokenSettings("http://127.0.0.1:1/token", SERVICE, ISSUER, signer.signer.cert)
    reg = serve_registry(LocalDriver(tmp_path / "store"), settings=ServerSettings(token=token))
    grants = [("repository", "team/app", ["pull"]), ("repository", "team/other", ["*"])]
    headers = {"Authorization": f"Bearer {signer.sign('alice', grants)}"}
    with httpx.Client(base_url=reg.url, headers=headers) as client:
        assert names_on(client.get("/ui/").text) == ["team/app", "team/other"]
        assert client.get("/ui/repository", params={"name": "secret/keys"}).status_code == 404
        page = client.get("/ui/repository", params={"name": "team/other"}).text
        assert "Delete" not in page  # `*` grants delete, but the token is not a session
    assert names_on(httpx.get(f"{reg.url}/ui/").text) == []  # no token, nothing


def test_a_repository_of_many_tags_is_paged_and_says_which_share(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    from regtool.layout import v2_write
    from regtool.ui.app import TAGS_PAGE_SIZE

    layout = default_layout(LocalDriver(tmp_path))
    image = write_image(layout, "app", "t0000")
    count = TAGS_PAGE_SIZE + 5
    for i in range(1, count):
        v2_write.write_tag(layout, "app", f"t{i:04d}", image.manifest)
    reg = serve_registry(LocalDriver(tmp_path), tmp_path)
    first = httpx.get(f"{reg.url}/ui/repository", params={"name": "app"}).text
    tags = re.findall(r'ref=(t\d{4})">', first)
    assert tags == [f"t{i:04d}" for i in range(TAGS_PAGE_SIZE)]
    assert f"{count} tags" in first and "Page 1 of 2" in first
    assert f"same as t0001, t0002, t0003 and {count - 4} more" in first
    second = httpx.get(
        f"{reg.url}/ui/repository", params={"name": "app", "page": "2", "order": "asc"}
    ).text
    assert re.findall(r'ref=(t\d{4})">', second) == [
        f"t{i:04d}" for i in range(TAGS_PAGE_SIZE, count)
    ]


def test_names_tags_and_references_outside_their_grammar_name_nothing(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    layout = default_layout(LocalDriver(tmp_path))
    image = write_image(layout, "app", "1")
    reg = serve_registry(LocalDriver(tmp_path), tmp_path)
    with httpx.Client(base_url=reg.url) as client:
        page = client.get("/ui/repository", params={"name": "app"}).text
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert match is not None
        for tag in ("../../_layers", "1/../..", "../../../../blobs", ""):
            form = {"csrf": match[1], "name": "app", "tag": tag, "confirm": "yes"}
            if tag == "":
                form["digest"] = "../../blobs"
            assert client.post("/ui/delete", data=form).status_code == 404, tag
        for name, ref in (("app", "../../_layers"), ("app", "1/current"), ("../app", "1")):
            answer = client.get("/ui/image", params={"name": name, "ref": ref})
            assert answer.status_code == 404, (name, ref)
    assert (tmp_path / layout.layer_link("app", image.config)).exists()
    assert (tmp_path / layout.blob_data(image.manifest)).exists()
    assert (tmp_path / layout.tag_current_link("app", "1")).exists()


def test_a_v1_store_names_only_the_repositories_it_holds(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    import asyncio

    from starlette.applications import Starlette

    from regtool.layout.detect import detect_layout
    from regtool.server.auth.guard import Guard
    from regtool.server.settings import ServerSettings
    from regtool.ui.app import ui_routes
    from regtool.ui.data import StoreView
    from tests.v1store import V1Store

    store = V1Store(LocalDriver(tmp_path))
    store.tag("exampleapp", "1.0", store.add_image())
    view = StoreView(detect_layout(LocalDriver(tmp_path)), str(tmp_path))
    guard = Guard(ServerSettings(read_only=True))
    app = Starlette(routes=ui_routes(view, guard, writable=False))

    async def statuses(names: list[str]) -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
            return [
                (await client.get("/ui/repository", params={"name": n})).status_code for n in names
            ]

    names = ["exampleapp", "../exampleapp", "library/../library/exampleapp", "nothing", ""]
    assert asyncio.run(statuses(names)) == [200, 404, 404, 404, 404]


def test_the_walk_is_kept_renewed_in_the_background_and_redone_where_deleted(
    tmp_path: Path,
) -> None:
    import shutil

    from regtool.ui.data import StoreView

    now = [0.0]
    layout = default_layout(LocalDriver(tmp_path))
    write_image(layout, "first", "1")
    write_image(layout, "first", "2")
    view = StoreView(layout, str(tmp_path), ttl=10, clock=lambda: now[0])
    assert list(view.repositories()) == ["first"]
    write_image(layout, "second", "1")
    assert list(view.repositories()) == ["first"]  # the kept walk
    info, _ = view.repository("second")  # a repository's own page walks it afresh
    assert [t.tag for t in info.tags] == ["1"]
    now[0] = 10.0
    assert list(view.repositories()) == ["first"]  # answered while a new walk runs
    view.wait_for_walk()
    assert list(view.repositories()) == ["first", "second"]
    shutil.rmtree(tmp_path / layout.tag_dir("first", "2"))  # a delete
    assert view.repositories()["first"][0] == 2
    view.forget("first")
    assert view.repositories()["first"][0] == 1
    assert [t.tag for t in view.repository("first")[0].tags] == ["1"]


def test_a_walk_begun_before_a_delete_does_not_bring_the_deleted_back(tmp_path: Path) -> None:
    import shutil
    import threading
    from collections.abc import Iterator

    from regtool.storage.base import Entry, Prune
    from regtool.ui.data import StoreView

    class PausedWalks(LocalDriver):
        """Holds a whole-tree walk of repositories/, once listed, until `go` is set."""

        pause = False
        listed = threading.Event()
        go = threading.Event()

        def walk(
            self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
        ) -> Iterator[Entry]:
            entries = list(super().walk(prefix, temporaries=temporaries, prune=prune))
            if self.pause and prefix.endswith("/repositories"):
                self.listed.set()
                self.go.wait(10)
            return iter(entries)

    now = [0.0]
    driver = PausedWalks(tmp_path)
    layout = default_layout(driver)
    write_image(layout, "app", "a")
    write_image(layout, "app", "b")
    view = StoreView(layout, str(tmp_path), ttl=10, clock=lambda: now[0])
    assert view.repositories()["app"][0] == 2
    driver.pause, now[0] = True, 10.0
    view.repositories()  # starts a new walk, which lists both tags and waits
    assert driver.listed.wait(10)
    shutil.rmtree(tmp_path / layout.tag_dir("app", "b"))
    view.forget("app")
    assert view.repositories()["app"][0] == 1
    driver.go.set()
    view.wait_for_walk()
    assert view.repositories()["app"][0] == 1
