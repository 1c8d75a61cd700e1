"""Token authentication on a live `regtool serve`: the challenge names realm, service
and scope; tokens are checked per route; skopeo completes the token dance with the test
issuer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path

import httpx
import pytest

from regtool.server.settings import ServerSettings, TokenSettings
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry
from tests.server.routes import seed
from tests.services import images as img
from tests.services.certs import self_signed
from tests.services.token_issuer import (
    ISSUER,
    SERVICE,
    RunningIssuer,
    TokenSigner,
    start_token_issuer,
)

FULL = ["pull", "push", "delete"]


def grant(user: str | None, kind: str, name: str, actions: list[str]) -> list[str]:
    """alice: everything on team/* and the catalog; anonymous: pull of public/*."""
    if kind == "registry" and name == "catalog" and user == "alice":
        return ["*"]
    if kind != "repository":
        return []
    if user == "alice" and fnmatchcase(name, "team/*"):
        return [a for a in actions if a in FULL]
    return [a for a in actions if a == "pull"] if fnmatchcase(name, "public/*") else []


@pytest.fixture
def signer(tmp_path: Path) -> TokenSigner:
    return TokenSigner(self_signed(tmp_path / "signer", "token signer", rsa_key=True))


@pytest.fixture
def issuer(signer: TokenSigner) -> Iterator[RunningIssuer]:
    running = start_token_issuer(signer, {"alice": "secret"}, grant)
    yield running
    running.stop()


@pytest.fixture
def registry(
    serve_registry: Callable[..., RunningRegistry],
    tmp_path: Path,
    signer: TokenSigner,
    issuer: RunningIssuer,
) -> RunningRegistry:
    root = tmp_path / "store"
    root.mkdir()
    token = TokenSettings(issuer.realm, SERVICE, ISSUER, signer.signer.cert)
    return serve_registry(LocalDriver(root), root, settings=ServerSettings(token=token))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_challenges_name_realm_service_and_scope(
    registry: RunningRegistry, issuer: RunningIssuer
) -> None:
    base = f'Bearer realm="{issuer.realm}",service="{SERVICE}"'
    r = httpx.get(f"{registry.url}/v2/")
    assert (r.status_code, r.headers["WWW-Authenticate"]) == (401, base)
    r = httpx.get(f"{registry.url}/v2/team/app/manifests/v1")
    assert r.headers["WWW-Authenticate"] == base + ',scope="repository:team/app:pull"'
    r = httpx.post(f"{registry.url}/v2/team/app/blobs/uploads/")
    assert r.headers["WWW-Authenticate"] == base + ',scope="repository:team/app:pull,push"'
    r = httpx.post(
        f"{registry.url}/v2/team/app/blobs/uploads/",
        params={"mount": "sha256:" + "a" * 64, "from": "other/x"},
    )
    assert r.headers["WWW-Authenticate"] == (
        base + ',scope="repository:team/app:pull,push repository:other/x:pull"'
    )
    r = httpx.get(f"{registry.url}/v2/_catalog")
    assert r.headers["WWW-Authenticate"] == base + ',scope="registry:catalog:*"'
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_scopes_are_enforced_per_route(registry: RunningRegistry, signer: TokenSigner) -> None:
    admin = signer.sign("admin", [("repository", n, FULL) for n in ("team/app", "other/x")])
    with httpx.Client(base_url=registry.url, headers=bearer(admin)) as c:
        seeded = seed(c, ["team/app", "other/x"])
        assert c.get("/v2/_catalog").status_code == 401  # no registry:catalog:* in it
    pull_only = signer.sign("bob", [("repository", "team/app", ["pull"])])
    with httpx.Client(base_url=registry.url, headers=bearer(pull_only)) as c:
        assert c.get("/v2/").status_code == 200
        assert c.get("/v2/team/app/manifests/v1").status_code == 200
        assert c.head(f"/v2/team/app/blobs/{seeded['team/app'].blob}").status_code == 200
        for r in (
            c.get("/v2/other/x/manifests/v1"),  # a scope for another repository
            c.post("/v2/team/app/blobs/uploads/"),
            c.delete(f"/v2/team/app/manifests/{seeded['team/app'].manifest}"),
        ):
            assert r.status_code == 401
            assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    every = signer.sign("carol", [("repository", "team/app", ["*"])])  # "*": all actions
    with httpx.Client(base_url=registry.url, headers=bearer(every)) as c:
        assert c.post("/v2/team/app/blobs/uploads/").status_code == 202
        assert c.get("/v2/other/x/manifests/v1").status_code == 401
    catalog = signer.sign("alice", [("registry", "catalog", ["*"])])
    r = httpx.get(f"{registry.url}/v2/_catalog", headers=bearer(catalog))
    assert r.json() == {"repositories": ["other/x", "team/app"]}


@pytest.mark.parametrize(
    "kind",
    ["expired", "not yet valid", "wrong issuer", "wrong audience", "wrong signature"],
)
def test_bad_tokens_are_refused(
    registry: RunningRegistry,
    issuer: RunningIssuer,
    signer: TokenSigner,
    tmp_path: Path,
    kind: str,
) -> None:
    access = [("repository", "team/app", ["pull"])]
    other = self_signed(tmp_path / "other", "someone else", rsa_key=True)
    token = {
        "expired": lambda: signer.sign("a", access, expires_in=-300),
        "not yet valid": lambda: signer.sign("a", access, not_before=300),
        "wrong issuer": lambda: signer.sign("a", access, issuer="elsewhere"),
        "wrong audience": lambda: signer.sign("a", access, audience="another-registry"),
        "wrong signature": lambda: signer.sign("a", access, key=other.private_key),
    }[kind]()
    r = httpx.get(f"{registry.url}/v2/team/app/tags/list", headers=bearer(token))
    assert r.status_code == 401
    # The scope to ask a new token for, as with no token at all.
    assert r.headers["WWW-Authenticate"] == (
        f'Bearer realm="{issuer.realm}",service="{SERVICE}",'
        'scope="repository:team/app:pull",error="invalid_token"'
    )
    assert token not in r.text
    r = httpx.put(f"{registry.url}/v2/team/app/manifests/v1", headers=bearer(token))
    assert 'scope="repository:team/app:pull,push"' in r.headers["WWW-Authenticate"]
    r = httpx.get(f"{registry.url}/v2/", headers=bearer(token))
    assert r.headers["WWW-Authenticate"].endswith(f'service="{SERVICE}",error="invalid_token"')


def test_a_method_a_route_lacks_is_answered_after_the_login(
    registry: RunningRegistry, signer: TokenSigner
) -> None:
    """405 (with `Allow`) only to whom may use the route, as distribution: anyone else
    learns nothing of the route but how to log in."""
    r = httpx.patch(f"{registry.url}/v2/team/app/manifests/v1")
    assert r.status_code == 401
    assert 'scope="repository:team/app:pull,push"' in r.headers["WWW-Authenticate"]
    token = signer.sign("alice", [("repository", "team/app", ["pull", "push"])])
    r = httpx.patch(f"{registry.url}/v2/team/app/manifests/v1", headers=bearer(token))
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD, PUT, DELETE"


@pytest.mark.interop
@pytest.mark.usefixtures("image_tools")
def test_skopeo_completes_the_token_dance(
    registry: RunningRegistry, issuer: RunningIssuer, tmp_path: Path
) -> None:
    image = img.build_image(tmp_path / "oci", "v1", size=2000)
    dest = f"docker://{registry.host}/team/app:v1"
    plain = ["--retry-times", "0"]
    with pytest.raises(img.ToolError):
        img._skopeo(
            "copy", *plain, "--dest-tls-verify=false", "--dest-creds", "alice:wrong",
            image.oci_ref, dest,
        )  # fmt: skip
    img._skopeo(
        "copy", *plain, "--preserve-digests", "--dest-tls-verify=false",
        "--dest-creds", "alice:secret", image.oci_ref, dest,
    )  # fmt: skip
    assert "repository:team/app:pull,push" in issuer.requests
    pulled = tmp_path / "pulled"
    img._skopeo(
        "copy", *plain, "--src-tls-verify=false", "--src-creds", "alice:secret",
        dest, f"oci:{pulled}:v1",
    )  # fmt: skip
    assert img.load_image(pulled, "v1").digest == image.digest
    # Anonymous pull where the issuer grants it, refusal where it does not.
    with pytest.raises(img.ToolError):
        img._skopeo("copy", *plain, "--src-tls-verify=false", "--src-no-creds", dest,
                    f"oci:{tmp_path / 'anon'}:v1")  # fmt: skip
