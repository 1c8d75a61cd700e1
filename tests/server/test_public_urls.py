"""The URLs a client is sent (`Location`, `Link`) behind a prefix and a proxy, the
configured response headers, and `docker search` (`/v1/search`) over the catalog."""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from regtool.server.auth.htpasswd import hash_password, write_entry
from regtool.server.settings import HttpSettings, ServerSettings
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry
from tests.v2store import write_image

Serve = Callable[..., RunningRegistry]
EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def start(serve_registry: Serve, tmp_path: Path, **http: object) -> RunningRegistry:
    root = tmp_path / "store"
    root.mkdir(exist_ok=True)
    settings = ServerSettings(http=dataclasses.replace(HttpSettings(), **http))  # type: ignore[arg-type]
    return serve_registry(LocalDriver(root), root, settings=settings)


def test_upload_urls_follow_the_proxy_headers(serve_registry: Serve, tmp_path: Path) -> None:
    reg = start(serve_registry, tmp_path)
    with httpx.Client(base_url=reg.url) as client:
        plain = client.post("/v2/app/blobs/uploads/").headers["Location"]
        assert plain.startswith(f"{reg.url}/v2/app/blobs/uploads/")
        proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "reg.example.com, inner"}
        r = client.post("/v2/app/blobs/uploads/", headers=proxied)
        assert r.headers["Location"].startswith("https://reg.example.com/v2/app/blobs/uploads/")
        forwarded = {"Forwarded": 'for=10.0.0.1;proto=https;host="r.example.org:8443"'}
        r = client.post("/v2/app/blobs/uploads/", headers=forwarded)
        assert r.headers["Location"].startswith("https://r.example.org:8443/v2/app/")
        # a header's text never becomes a scheme of its own
        r = client.post("/v2/app/blobs/uploads/", headers={"X-Forwarded-Proto": "javascript"})
        assert r.headers["Location"].startswith("http://")


def test_http_host_and_relative_urls(serve_registry: Serve, tmp_path: Path) -> None:
    reg = start(serve_registry, tmp_path, host="https://registry.example.com")
    with httpx.Client(base_url=reg.url) as client:
        r = client.post("/v2/app/blobs/uploads/", headers={"X-Forwarded-Host": "elsewhere"})
        assert r.headers["Location"].startswith("https://registry.example.com/v2/app/blobs/")
    relative = start(serve_registry, tmp_path, relative_urls=True)
    with httpx.Client(base_url=relative.url) as client:
        r = client.post("/v2/app/blobs/uploads/")
        assert r.headers["Location"].startswith("/v2/app/blobs/uploads/")


def test_routes_under_a_prefix(serve_registry: Serve, tmp_path: Path) -> None:
    reg = start(serve_registry, tmp_path, prefix="/registry")
    for name in ("a/one", "b/two"):
        write_image(reg.layout, name, "1.0")
    with httpx.Client(base_url=reg.url) as client:
        assert client.get("/v2/").status_code == 404
        assert client.get("/registry/v2/").status_code == 200
        r = client.get("/registry/v2/_catalog", params={"n": 1})
        assert r.json() == {"repositories": ["a/one"]}
        assert r.headers["Link"] == '</registry/v2/_catalog?last=a%2Fone&n=1>; rel="next"'
        r = client.post("/registry/v2/app/blobs/uploads/")
        location = r.headers["Location"]
        assert location.startswith(f"{reg.url}/registry/v2/app/blobs/uploads/")
        r = client.put(location, params={"digest": EMPTY})
        assert r.status_code == 201, r.text
        assert client.get("/registrya/v2/").status_code == 404


def test_the_web_ui_under_a_prefix(serve_registry: Serve, tmp_path: Path) -> None:
    """The UI answers below the prefix and its links, redirects and cookie stay there."""
    reg = start(serve_registry, tmp_path, prefix="/registry")
    write_image(reg.layout, "a/one", "1.0")
    with httpx.Client(base_url=reg.url) as client:
        r = client.get("/registry/", headers={"Accept": "text/html"})
        assert r.status_code == 302 and r.headers["Location"] == f"{reg.url}/registry/ui/"
        assert client.get("/registry/").status_code == 200  # a load balancer's probe
        page = client.get("/registry/ui/")
        assert page.status_code == 200, page.text
        links = re.findall(r'(?:href|action|src)="(/[^"]*)"', page.text)
        assert links and all(link.startswith("/registry/ui/") for link in links), links
        repository = next(link for link in links if "/repository" in link)
        r = client.get(html.unescape(repository))
        assert r.status_code == 200 and "1.0" in r.text
        assert "Path=/registry/ui" in page.headers["set-cookie"]


def test_configured_headers_on_every_answer(serve_registry: Serve, tmp_path: Path) -> None:
    headers = (("X-Content-Type-Options", "nosniff"), ("X-Custom", "a"), ("X-Custom", "b"))
    reg = start(serve_registry, tmp_path, headers=headers)
    with httpx.Client(base_url=reg.url) as client:
        for r in (client.get("/v2/"), client.get("/v2/nothing/tags/list")):
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers.get_list("X-Custom") == ["a", "b"]
            assert len(r.headers["X-Request-Id"]) == 36
        assert client.get("/v2/").headers["X-Request-Id"] != r.headers["X-Request-Id"]


def test_search_lists_matching_repositories(serve_registry: Serve, tmp_path: Path) -> None:
    reg = start(serve_registry, tmp_path)
    for name in ("exampleapp", "team/exampleapp-api", "team/other", "library/exampletool"):
        write_image(reg.layout, name, "1.0")
    with httpx.Client(base_url=reg.url) as client:
        r = client.get("/v1/search", params={"q": "Example", "n": 2})
        assert r.status_code == 200
        doc = r.json()
        assert doc["query"] == "Example" and doc["num_results"] == 3
        assert doc["num_pages"] == 2 and doc["page"] == 1 and doc["page_size"] == 2
        assert [x["name"] for x in doc["results"]] == ["exampleapp", "library/exampletool"]
        assert doc["results"][0] == {
            "name": "exampleapp",
            "description": "",
            "star_count": 0,
            "is_official": False,
            "is_automated": False,
        }
        page2 = client.get("/v1/search", params={"q": "example", "n": 2, "page": 2}).json()
        assert [x["name"] for x in page2["results"]] == ["team/exampleapp-api"]
        assert client.get("/v1/search", params={"q": "nothing"}).json()["results"] == []
        assert client.get("/v1/search", params={"q": "x", "n": "0"}).status_code == 400
        assert client.get("/v1/_ping").status_code == 200


RULES = """
rules:
  - repositories: ["team/*"]
    users: [alice]
    allow: [pull]
  - repositories: ["public/*"]
    anonymous: true
    allow: [pull]
"""


@pytest.mark.parametrize(
    "user, seen",
    [("alice", ["public/app", "team/app"]), (None, ["public/app"])],
)
def test_search_shows_only_what_the_user_may_pull(
    serve_registry: Serve, tmp_path: Path, user: str | None, seen: list[str]
) -> None:
    htpasswd, access = tmp_path / "htpasswd", tmp_path / "access.yml"
    write_entry(htpasswd, "alice", hash_password("alice-pw", cost=4))
    access.write_text(RULES)
    root = tmp_path / "store"
    root.mkdir()
    reg = serve_registry(
        LocalDriver(root), root, settings=ServerSettings(htpasswd=htpasswd, access=access)
    )
    for name in ("team/app", "public/app", "secret/app"):
        write_image(reg.layout, name, "1.0")
    auth = ("alice", "alice-pw") if user else None
    with httpx.Client(base_url=reg.url, auth=auth) as client:
        r = client.get("/v1/search", params={"q": "app"})
        assert r.status_code == 200, r.text
        assert [x["name"] for x in r.json()["results"]] == seen
