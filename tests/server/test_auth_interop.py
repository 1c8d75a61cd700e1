"""The same htpasswd file and the same token root bundle work for distribution
(`docker-registry serve`) and `regtool serve` alike, on the same store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from regtool.server.auth.htpasswd import hash_password, write_entry
from regtool.server.settings import ServerSettings, TokenSettings
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry
from tests.services import images as img
from tests.services.certs import self_signed
from tests.services.distribution import DistributionRegistry, filesystem_storage
from tests.services.token_issuer import ISSUER, SERVICE, TokenSigner

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("image_tools")]
REALM = "https://auth.example/token"


@pytest.mark.parametrize("cost", [4, 10])
def test_one_htpasswd_file_for_both(
    make_distribution: Callable[..., DistributionRegistry],
    serve_registry: Callable[..., RunningRegistry],
    tmp_path: Path,
    cost: int,
) -> None:
    htpasswd = tmp_path / "htpasswd"
    write_entry(htpasswd, "alice", hash_password("secret", cost=cost))
    root = tmp_path / "root"
    dist = make_distribution(
        filesystem_storage(root),
        auth={"htpasswd": {"realm": "regtool", "path": str(htpasswd)}},
    )
    store = root / "docker" / "registry" / "v2"
    store.mkdir(parents=True, exist_ok=True)
    ours = serve_registry(LocalDriver(root), root, settings=ServerSettings(htpasswd=htpasswd))
    for url in (dist.url, ours.url):
        r = httpx.get(f"{url}/v2/")
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Basic realm="regtool"'
        assert httpx.get(f"{url}/v2/", auth=("alice", "wrong")).status_code == 401
        assert httpx.get(f"{url}/v2/", auth=("alice", "secret")).status_code == 200
    # Pushed through distribution with the password, pulled through regtool with it.
    image = img.build_image(tmp_path / "oci", "v1", size=1500)
    img._skopeo(
        "copy", "--retry-times", "0", "--preserve-digests", "--dest-tls-verify=false",
        "--dest-creds", "alice:secret", image.oci_ref, f"docker://{dist.host}/team/app:v1",
    )  # fmt: skip
    img._skopeo(
        "copy", "--retry-times", "0", "--src-tls-verify=false", "--src-creds", "alice:secret",
        f"docker://{ours.host}/team/app:v1", f"oci:{tmp_path / 'pulled'}:v1",
    )  # fmt: skip
    assert img.load_image(tmp_path / "pulled", "v1").digest == image.digest


def test_one_token_bundle_for_both(
    make_distribution: Callable[..., DistributionRegistry],
    serve_registry: Callable[..., RunningRegistry],
    tmp_path: Path,
) -> None:
    signer = TokenSigner(self_signed(tmp_path / "signer", "token signer", rsa_key=True))
    bundle = signer.signer.cert
    root = tmp_path / "root"
    token_config = {"realm": REALM, "service": SERVICE, "issuer": ISSUER}
    dist = make_distribution(
        filesystem_storage(root), auth={"token": {**token_config, "rootcertbundle": str(bundle)}}
    )
    (root / "docker" / "registry" / "v2").mkdir(parents=True, exist_ok=True)
    settings = ServerSettings(token=TokenSettings(REALM, SERVICE, ISSUER, bundle))
    ours = serve_registry(LocalDriver(root), root, settings=settings)
    pull = [("repository", "team/app", ["pull"])]
    tokens = {
        "x5c": (signer.sign("alice", pull, header="x5c"), 404),  # allowed: the repo is empty
        "kid": (signer.sign("alice", pull, header="kid"), 404),
        "jwk": (signer.sign("alice", pull, header="jwk"), 404),
        "other repository": (signer.sign("alice", [("repository", "x", ["pull"])]), 401),
        "expired": (signer.sign("alice", pull, expires_in=-300), 401),
        "wrong audience": (signer.sign("alice", pull, audience="other"), 401),
    }
    for url in (dist.url, ours.url):
        r = httpx.get(f"{url}/v2/team/app/tags/list")
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == (
            f'Bearer realm="{REALM}",service="{SERVICE}",scope="repository:team/app:pull"'
        )
        for kind, (token, status) in tokens.items():
            r = httpx.get(
                f"{url}/v2/team/app/tags/list", headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == status, (url, kind, r.text)
