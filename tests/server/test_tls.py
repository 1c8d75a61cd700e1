"""`regtool serve` over TLS with htpasswd logins, driven by real clients: httpx with the
test's CA, and skopeo with `--cert-dir` and `--tls-verify=true`."""

from __future__ import annotations

import re
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from regtool.errors import UsageError
from regtool.server.auth.htpasswd import hash_password, write_entry
from regtool.server.settings import ServerSettings, TlsSettings
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry
from tests.services import images as img
from tests.services.certs import CA, make_ca


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return make_ca(tmp_path / "ca", "regtool test CA")


def htpasswd_file(path: Path, **users: str) -> Path:
    """An htpasswd file with bcrypt entries (cost 4: the tests need not be slow)."""
    for user, password in users.items():
        write_entry(path, user, hash_password(password, cost=4))
    return path


def _registry(
    serve_registry: Callable[..., RunningRegistry],
    tmp_path: Path,
    settings: ServerSettings,
) -> RunningRegistry:
    root = tmp_path / "store"
    root.mkdir()
    return serve_registry(LocalDriver(root), root, settings=settings)


def test_https_with_a_ca_signed_certificate(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path, ca: CA
) -> None:
    server = ca.issue(tmp_path / "server", "127.0.0.1")
    settings = ServerSettings(tls=TlsSettings(server.cert, server.key))
    reg = _registry(serve_registry, tmp_path, settings)
    assert reg.url.startswith("https://")
    assert httpx.get(f"{reg.url}/v2/", verify=str(ca.cert)).status_code == 200
    with pytest.raises(httpx.ConnectError):  # not signed by a CA the client trusts
        httpx.get(f"{reg.url}/v2/")
    assert reg.server.config.ssl is not None
    assert reg.server.config.ssl.minimum_version == ssl.TLSVersion.TLSv1_2
    old = ssl.create_default_context(cafile=str(ca.cert))
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{reg.url}/v2/", verify=old)


def negotiated(url: str, ca: CA, *options: str) -> str:
    """The suite `openssl s_client` with `options` agrees with the server at `url`."""
    host = url.removeprefix("https://")
    done = subprocess.run(
        ["openssl", "s_client", "-connect", host, "-CAfile", str(ca.cert), "-brief", *options],
        input=b"",
        capture_output=True,
        timeout=30,
    )
    found = re.search(rb"^(?:Ciphersuite|Cipher is)[: ]+(\S+)", done.stderr + done.stdout, re.M)
    assert found, done.stderr.decode()
    return found.group(1).decode()


def test_suites_are_strong_and_the_clients_order_decides(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path, ca: CA
) -> None:
    """A client that puts AES-128-GCM first (as Go's do on AES hardware) gets it, one
    that puts AES-256-GCM first gets that; TLS 1.2 takes AEAD suites only."""
    server = ca.issue(tmp_path / "server", "127.0.0.1")
    reg = _registry(
        serve_registry, tmp_path, ServerSettings(tls=TlsSettings(server.cert, server.key))
    )
    aes128, aes256 = "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"
    assert negotiated(reg.url, ca, "-ciphersuites", f"{aes128}:{aes256}") == aes128
    assert negotiated(reg.url, ca, "-ciphersuites", f"{aes256}:{aes128}") == aes256
    tls12 = ("-tls1_2", "-cipher")
    gcm, chacha = "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"
    assert negotiated(reg.url, ca, *tls12, f"{chacha}:{gcm}") == chacha
    cbc = ssl.create_default_context(cafile=str(ca.cert))
    cbc.maximum_version = ssl.TLSVersion.TLSv1_2
    cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA256")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{reg.url}/v2/", verify=cbc)


def test_tls13_minimum_from_the_config(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path, ca: CA
) -> None:
    server = ca.issue(tmp_path / "server", "127.0.0.1")
    tls = {"certificate": str(server.cert), "key": str(server.key), "minimumtls": "tls1.3"}
    reg = _registry(serve_registry, tmp_path, ServerSettings.from_config({"http": {"tls": tls}}))
    tls12 = ssl.create_default_context(cafile=str(ca.cert))
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{reg.url}/v2/", verify=tls12)
    assert httpx.get(f"{reg.url}/v2/", verify=str(ca.cert)).status_code == 200
    with pytest.raises(UsageError, match=r"takes tls1\.2 or tls1\.3"):
        ServerSettings.from_config({"http": {"tls": {**tls, "minimumtls": "tls1.0"}}})


def test_client_certificates_from_the_client_ca(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path, ca: CA
) -> None:
    server = ca.issue(tmp_path / "server", "127.0.0.1")
    clients = make_ca(tmp_path / "clients", "client CA")
    alice = clients.issue(tmp_path / "alice", "alice", client=True)
    stranger = ca.issue(tmp_path / "stranger", "mallory", client=True)  # the wrong CA
    tls = TlsSettings(server.cert, server.key, clients.cert)
    reg = _registry(serve_registry, tmp_path, ServerSettings(tls=tls))

    def get(cert: tuple[str, str] | None) -> int:
        context = ssl.create_default_context(cafile=str(ca.cert))
        if cert:
            context.load_cert_chain(*cert)
        return httpx.get(f"{reg.url}/v2/", verify=context).status_code

    assert get((str(alice.cert), str(alice.key))) == 200
    for refused in (None, (str(stranger.cert), str(stranger.key))):
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            get(refused)


@pytest.mark.interop
@pytest.mark.usefixtures("image_tools")
def test_skopeo_through_tls_and_htpasswd(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path, ca: CA
) -> None:
    server = ca.issue(tmp_path / "server", "127.0.0.1")
    certs = tmp_path / "certs.d"
    certs.mkdir()
    (certs / "ca.crt").write_bytes(ca.cert.read_bytes())
    passwords = htpasswd_file(tmp_path / "htpasswd", alice="secret")
    settings = ServerSettings(tls=TlsSettings(server.cert, server.key), htpasswd=passwords)
    reg = _registry(serve_registry, tmp_path, settings)
    image = img.build_image(tmp_path / "oci", "v1", size=3000)
    dest = f"docker://{reg.host}/team/app:v1"
    tls = ["--dest-tls-verify=true", "--dest-cert-dir", str(certs)]

    r = httpx.get(f"{reg.url}/v2/", verify=str(ca.cert))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="regtool"'
    with pytest.raises(img.ToolError, match=r"authentication required|unauthorized"):
        img._skopeo("copy", "--retry-times", "0", *tls, "--dest-no-creds", image.oci_ref, dest)
    with pytest.raises(img.ToolError, match=r"unauthorized|authentication required"):
        img._skopeo(
            "copy", "--retry-times", "0", *tls, "--dest-creds", "alice:wrong", image.oci_ref, dest
        )
    assert not (reg.root and (reg.root / "docker/registry/v2/repositories").exists())

    authfile = tmp_path / "auth.json"
    img._run(
        [
            "skopeo",
            "login",
            "--authfile",
            str(authfile),
            "--cert-dir",
            str(certs),
            "--tls-verify=true",
            "--username",
            "alice",
            "--password",
            "secret",
            reg.host,
        ]
    )
    assert reg.host in authfile.read_text()
    img._skopeo(
        "copy",
        "--retry-times",
        "0",
        "--preserve-digests",
        *tls,
        "--dest-authfile",
        str(authfile),
        image.oci_ref,
        dest,
    )
    pulled = tmp_path / "pulled"
    img._skopeo(
        "copy",
        "--retry-times",
        "0",
        "--src-tls-verify=true",
        "--src-cert-dir",
        str(certs),
        "--src-creds",
        "alice:secret",
        dest,
        f"oci:{pulled}:v1",
    )
    assert img.load_image(pulled, "v1").digest == image.digest
