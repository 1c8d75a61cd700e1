"""Access rules over every route: alice may push `team/*`, bob may only pull, anonymous
may pull `public/*`; each user tries each route on each repository. Refused: 401 with
the challenge when not logged in, 403 DENIED when logged in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from regtool.server.auth.htpasswd import hash_password, write_entry
from regtool.server.settings import ServerSettings
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry
from tests.server.routes import ROUTES, Route, seed, sha
from tests.services import images as img

RULES = """
rules:
  - repositories: ["**"]
    users: [admin]
    allow: [pull, push, delete]
  - repositories: ["team/*"]
    users: [alice]
    allow: [pull, push, delete]
  - repositories: ["**"]
    users: [bob]
    allow: [pull]
  - repositories: ["public/*"]
    anonymous: true
    allow: [pull]
"""
REPOSITORIES = ["team/app", "public/base", "other/x"]
#: What each user may do where, written out by hand from RULES.
MAY: dict[str | None, dict[str, set[str]]] = {
    "alice": {"team/app": {"pull", "push", "delete"}, "public/base": {"pull"}, "other/x": set()},
    "bob": {name: {"pull"} for name in REPOSITORIES},
    None: {"team/app": set(), "public/base": {"pull"}, "other/x": set()},
}
PASSWORDS = {"admin": "admin-pw", "alice": "alice-pw", "bob": "bob-pw"}


@pytest.fixture
def registry(serve_registry: Callable[..., RunningRegistry], tmp_path: Path) -> RunningRegistry:
    htpasswd, access = tmp_path / "htpasswd", tmp_path / "access.yml"
    for user, password in PASSWORDS.items():
        write_entry(htpasswd, user, hash_password(password, cost=4))
    access.write_text(RULES)
    root = tmp_path / "store"
    root.mkdir()
    settings = ServerSettings(htpasswd=htpasswd, access=access)
    return serve_registry(LocalDriver(root), root, settings=settings)


def client(registry: RunningRegistry, user: str | None) -> httpx.Client:
    auth = (user, PASSWORDS[user]) if user else None
    return httpx.Client(base_url=registry.url, auth=auth, timeout=30)


@pytest.fixture
def admin(registry: RunningRegistry) -> Iterator[httpx.Client]:
    with client(registry, "admin") as c:
        yield c


def refused(r: httpx.Response, user: str | None) -> None:
    if user is None:
        assert r.status_code == 401, r.text
        assert r.headers["WWW-Authenticate"] == 'Basic realm="regtool"'
    else:
        assert r.status_code == 403, r.text
        if r.request.method != "HEAD":
            assert r.json()["errors"][0]["code"] == "DENIED"


@pytest.mark.parametrize("route", ROUTES, ids=[r.id for r in ROUTES])
@pytest.mark.parametrize("user", ["alice", "bob", None], ids=["alice", "bob", "anonymous"])
def test_every_route_as_each_user(
    registry: RunningRegistry, admin: httpx.Client, user: str | None, route: Route
) -> None:
    seeded = seed(admin, REPOSITORIES)
    with client(registry, user) as c:
        for name in REPOSITORIES:
            r = route.call(c, name, seeded[name])
            if route.needs <= MAY[user][name]:
                assert r.status_code == route.ok, (name, r.text)
            else:
                refused(r, user)
    # Nothing refused changed the store: each tag and blob is still there for admin.
    for name in REPOSITORIES:
        allowed = route.needs <= MAY[user][name]
        if not allowed or route.needs == {"pull"}:
            assert admin.get(f"/v2/{name}/manifests/v1").status_code == 200
            assert admin.head(f"/v2/{name}/blobs/{seeded[name].blob}").status_code == 200
            assert admin.get(seeded[name].upload).status_code == 204


def test_base_and_catalog(registry: RunningRegistry, admin: httpx.Client) -> None:
    seed(admin, REPOSITORIES)
    seen = {}
    for user in ("alice", "bob", None):
        with client(registry, user) as c:
            # without a login the probe is challenged, so that clients holding one send
            # it; the catalog answers anonymous requests, listing what they may pull
            assert c.get("/v2/").status_code == (401 if user is None else 200)
            r = c.get("/v2/_catalog")
            assert r.status_code == 200
            seen[user] = r.json()["repositories"]
            page = c.get("/v2/_catalog", params={"n": 1})  # paged after filtering
            assert page.json()["repositories"] == seen[user][:1]
    assert seen == {
        "alice": ["public/base", "team/app"],
        "bob": ["other/x", "public/base", "team/app"],
        None: ["public/base"],
    }


def test_mounting_needs_pull_on_the_source(registry: RunningRegistry, admin: httpx.Client) -> None:
    seeded = seed(admin, REPOSITORIES)
    with client(registry, "alice") as c:
        for source, status in (("other/x", 403), ("public/base", 201), ("team/app", 201)):
            blob = seeded[source].blob
            r = c.post("/v2/team/new/blobs/uploads/", params={"mount": blob, "from": source})
            assert r.status_code == status, (source, r.text)
        # The refused mount left no link: team/new does not serve other/x's blob.
        assert c.head(f"/v2/team/new/blobs/{seeded['other/x'].blob}").status_code == 404
        assert c.head(f"/v2/team/new/blobs/{seeded['public/base'].blob}").status_code == 200
    with client(registry, None) as anonymous:
        r = anonymous.post(
            "/v2/public/base/blobs/uploads/",
            params={"mount": sha(b"x"), "from": "public/base"},
        )
        assert r.status_code == 401


def test_an_empty_basic_login_is_anonymous(
    registry: RunningRegistry, admin: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """skopeo --no-creds and podman send `Basic Og==` (no user, no password): served as
    anonymous, neither a failed login (logged, slowing the address down) nor refused."""
    seeded = seed(admin, REPOSITORIES)
    with httpx.Client(base_url=registry.url, auth=("", "")) as nobody:
        assert nobody.get("/v2/").status_code == 200
        assert nobody.get("/v2/public/base/manifests/v1").status_code == 200
        r = nobody.head(f"/v2/team/app/blobs/{seeded['team/app'].blob}")
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    assert "failed login" not in caplog.text


def test_rules_are_re_read_when_their_file_changes(
    registry: RunningRegistry,
    admin: httpx.Client,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An edit takes effect on the next request, without a restart; an edit that breaks
    the file is logged and the rules read before stay in force (neither open nor shut)."""
    seed(admin, REPOSITORIES)
    access = tmp_path / "access.yml"
    with client(registry, "bob") as bob:
        assert bob.get("/v2/other/x/manifests/v1").status_code == 200
        access.write_text(RULES.replace("users: [bob]", "users: [carol]"))
        assert bob.get("/v2/other/x/manifests/v1").status_code == 403
        assert bob.get("/v2/_catalog").json()["repositories"] == ["public/base"]
        access.write_text(RULES + "  - this is not a rule\n")
        assert bob.get("/v2/other/x/manifests/v1").status_code == 403  # still the last good
        assert "what was read before stays in force" in caplog.text
        access.write_text(RULES)
        assert bob.get("/v2/other/x/manifests/v1").status_code == 200
    with client(registry, None) as anonymous:
        assert anonymous.get("/v2/public/base/manifests/v1").status_code == 200


@pytest.mark.usefixtures("image_tools")
def test_with_anonymous_grants_clients_still_log_in(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    """skopeo (as Docker) sends the login it holds only once `/v2/` asks for one: alice
    pushes where she may, a wrong password fails its login, and skopeo without a login
    still pulls what anonymous may."""
    image = img.build_image(tmp_path / "oci", "v1", size=1500)
    dest = f"docker://{registry.host}"
    flags = ["--retry-times", "0", "--preserve-digests"]
    img._skopeo(
        "copy", *flags, "--dest-tls-verify=false", "--dest-creds", f"alice:{PASSWORDS['alice']}",
        image.oci_ref, f"{dest}/team/app:v1",
    )  # fmt: skip
    img._skopeo(
        "copy", *flags, "--dest-tls-verify=false", "--dest-creds", "admin:admin-pw",
        image.oci_ref, f"{dest}/public/base:v1",
    )  # fmt: skip
    with pytest.raises(img.ToolError, match=r"401|nauthorized|invalid username"):
        img._skopeo(
            "login", "--tls-verify=false", "-u", "alice", "-p", "wrong",
            "--authfile", str(tmp_path / "auth.json"), registry.host,
        )  # fmt: skip
    img._skopeo(
        "copy", "--retry-times", "0", "--src-tls-verify=false", "--src-no-creds",
        f"{dest}/public/base:v1", f"oci:{tmp_path / 'pulled'}:v1",
    )  # fmt: skip
    assert img.load_image(tmp_path / "pulled", "v1").digest == image.digest
