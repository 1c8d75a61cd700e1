"""`regtool serve` behind nginx, TLS terminated there: skopeo pushes through it (its
blob uploads stream with PATCH to the `Location` the server gives, which must be
nginx's https URL, since the server itself listens only on a Unix socket) and pulls
back what it pushed."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from regtool.server.auth.htpasswd import hash_password, write_entry
from tests.server.serve_proc import start_serve, stop_serve
from tests.services import images as img
from tests.services.certs import make_ca
from tests.services.nginx import running_nginx

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("image_tools")]


@contextlib.contextmanager
def serving_on_unix(tmp_path: Path, more: str = "") -> Iterator[tuple[Path, list[str]]]:
    """`regtool serve --config` on a Unix socket (a short path: sun_path is 108 bytes),
    `more` added to its config file; yields the socket and, once stopped, its output."""
    output: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rt-") as short:
        sock = Path(short) / "r.sock"
        cfg = tmp_path / "config.yml"
        cfg.write_text(
            f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {tmp_path / 'store'}}}\n"
            f"http:\n  net: unix\n  addr: {sock}\n{more}"
        )
        proc = start_serve(["--config", str(cfg)], sock.exists)
        try:
            yield sock, output
        finally:
            output.append(stop_serve(proc))


@pytest.fixture
def unix_registry(tmp_path: Path) -> Iterator[Path]:
    with serving_on_unix(tmp_path) as (sock, _):
        yield sock


def skopeo(*args: str) -> None:
    subprocess.run(["skopeo", *args], check=True, capture_output=True, text=True, timeout=120)


def test_skopeo_through_nginx_with_tls(unix_registry: Path, tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca", "Test CA")
    server = ca.issue(tmp_path / "server", "127.0.0.1")
    certs = tmp_path / "certs.d"
    certs.mkdir()
    (certs / "ca.crt").write_bytes(ca.cert.read_bytes())
    image = img.build_image(tmp_path / "oci", "app", size=3 << 20, layers=2)
    with running_nginx(tmp_path / "nginx", unix_registry, server.cert, server.key) as proxy:
        r = httpx.post(f"https://{proxy.host}/v2/team/app/blobs/uploads/", verify=str(ca.cert))
        assert r.headers["Location"].startswith(f"https://{proxy.host}/v2/team/app/blobs/uploads/")
        skopeo(
            "copy",
            "--quiet",
            "--retry-times",
            "0",
            "--dest-no-creds",
            "--dest-cert-dir",
            str(certs),
            image.oci_ref,
            f"docker://{proxy.host}/team/app:1.0",
        )
        skopeo(
            "copy",
            "--quiet",
            "--retry-times",
            "0",
            "--src-no-creds",
            "--src-cert-dir",
            str(certs),
            f"docker://{proxy.host}/team/app:1.0",
            f"oci:{tmp_path / 'pulled'}:1.0",
        )
        patches = [
            line for line in proxy.access_log() if '"PATCH /v2/team/app/blobs/uploads/' in line
        ]
        assert patches, proxy.access_log()
    pulled = img.load_image(tmp_path / "pulled", "1.0")
    assert pulled.layer_digests == image.layer_digests
    assert pulled.config_digest == image.config_digest


def test_the_client_behind_nginx_on_a_unix_socket(tmp_path: Path) -> None:
    """A Unix socket gives no peer address: the client is the address nginx adds to
    `X-Forwarded-For` (for the login throttle, the logs and events), never one the
    client wrote there itself; without the header it is unknown."""
    htpasswd = tmp_path / "htpasswd"
    write_entry(htpasswd, "alice", hash_password("secret", cost=4))
    ca = make_ca(tmp_path / "ca", "Test CA")
    server = ca.issue(tmp_path / "server", "127.0.0.1")
    auth = f"auth:\n  htpasswd: {{realm: r, path: {htpasswd}}}\n"
    with serving_on_unix(tmp_path, auth) as (sock, output):
        with running_nginx(tmp_path / "nginx", sock, server.cert, server.key) as proxy:
            r = httpx.get(
                f"https://{proxy.host}/v2/",
                auth=("alice", "wrong"),
                headers={"X-Forwarded-For": "203.0.113.9"},
                verify=str(ca.cert),
            )
            assert r.status_code == 401
        direct = httpx.HTTPTransport(uds=str(sock))
        with httpx.Client(transport=direct, base_url="http://registry") as c:
            assert c.get("/v2/", auth=("bob", "wrong")).status_code == 401
    (out,) = output
    assert "failed login for user 'alice' from 127.0.0.1" in out, out
    assert "203.0.113.9" not in out
    assert "failed login for user 'bob' from unknown" in out, out
