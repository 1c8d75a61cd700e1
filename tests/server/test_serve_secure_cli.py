"""`regtool serve` with TLS, htpasswd, read-only and no-delete flags as a user runs it:
one clear line and exit 2 for anything it cannot use, a warning for plain HTTP that
other hosts can reach."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from regtool.errors import UsageError
from regtool.server.auth.htpasswd import hash_password, write_entry
from regtool.server.settings import ServerSettings, TlsSettings, TokenSettings
from tests.server.test_serve_cli import serve_process
from tests.services import free_port
from tests.services.certs import make_ca

_MAIN = "from regtool.cli.main import main; main()"


def run_serve(args: list[str], url: str, during: Callable[[str], None]) -> str:
    """`regtool serve ARGS` until it answers at `url` (any status), `during(url)`, then
    Ctrl-C; returns what it printed."""
    return serve_process(args, url, during)[0]


def refused(args: list[str]) -> list[str]:
    """The lines `regtool serve ARGS` prints when it refuses to start (exit 2)."""
    done = subprocess.run(
        [sys.executable, "-c", _MAIN, "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    return done.stderr.strip().splitlines()


def test_plain_http_on_a_non_loopback_address_warns(tmp_path: Path) -> None:
    port = free_port()
    out = run_serve(
        [str(tmp_path / "s"), "--addr", f"0.0.0.0:{port}"], f"http://127.0.0.1:{port}", print
    )
    warning = [line for line in out.splitlines() if "warning: plain HTTP" in line]
    assert len(warning) == 1 and "passwords and tokens" in warning[0], out
    quiet = run_serve(
        [str(tmp_path / "s"), "--addr", f"127.0.0.1:{port}"], f"http://127.0.0.1:{port}", print
    )
    assert "warning: plain HTTP" not in quiet


def test_https_with_htpasswd_and_read_only(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca", "CA")
    server = ca.issue(tmp_path / "server", "127.0.0.1")
    passwords = tmp_path / "htpasswd"
    write_entry(passwords, "alice", hash_password("secret", cost=4))
    port = free_port()

    def during(url: str) -> None:
        assert httpx.get(f"{url}/v2/", verify=str(ca.cert)).status_code == 401
        wrong = ("alice", "not-her-password")
        assert httpx.get(f"{url}/v2/", verify=str(ca.cert), auth=wrong).status_code == 401
        auth = ("alice", "secret")
        assert httpx.get(f"{url}/v2/", verify=str(ca.cert), auth=auth).status_code == 200
        r = httpx.post(f"{url}/v2/app/blobs/uploads/", verify=str(ca.cert), auth=auth)
        assert r.status_code == 405
        assert "read-only" in r.json()["errors"][0]["message"]

    args = [str(tmp_path / "s"), "--addr", f"0.0.0.0:{port}"]
    args += ["--tls-cert", str(server.cert), "--tls-key", str(server.key)]
    args += ["--htpasswd", str(passwords), "--read-only"]
    out = run_serve(args, f"https://127.0.0.1:{port}", during)
    assert f"listening on https://0.0.0.0:{port}" in out
    assert "warning: plain HTTP" not in out
    assert "secret" not in out and "not-her-password" not in out
    assert "failed login for user 'alice' from 127.0.0.1" in out


def test_what_serve_cannot_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca", "CA")
    other = make_ca(tmp_path / "other", "other")
    store = str(tmp_path / "s")
    port = ["--addr", f"127.0.0.1:{free_port()}"]
    cert, key = str(ca.cert), str(other.issued.key)
    assert refused([store, *port, "--tls-cert", cert, "--tls-key", key]) == [
        f"error: cannot use --tls-cert {cert} with --tls-key {key}: KEY_VALUES_MISMATCH"
    ]
    missing = str(tmp_path / "missing.pem")
    [line] = refused([store, *port, "--tls-cert", missing, "--tls-key", key])
    assert line.endswith("No such file or directory")
    assert refused([store, *port, "--tls-key", key]) == [
        "error: TLS needs both --tls-cert and --tls-key"
    ]
    md5 = tmp_path / "htpasswd"
    md5.write_text("# users\nalice:$apr1$x8Tr1t0n$yZ7FCsAXRO0NhLcD2C7Fk/\n")
    [line] = refused([store, *port, "--htpasswd", str(md5)])
    assert line.startswith(f"error: {md5} line 2: the entry for 'alice' is not a bcrypt hash")
    assert "$apr1$" not in line
    [line] = refused([store, *port, "--access", str(md5)])
    assert "--access needs --htpasswd" in line
    [line] = refused([store, *port, "--token-realm", "https://auth/token"])
    assert "token authentication needs" in line


def test_settings_from_a_distribution_config_then_the_flags(tmp_path: Path) -> None:
    doc = {
        "http": {"tls": {"certificate": "/c.pem", "key": "/k.pem", "clientcas": ["/ca.pem"]}},
        "auth": {"htpasswd": {"realm": "basic-realm", "path": "/etc/htpasswd"}},
        "storage": {"maintenance": {"readonly": {"enabled": True}}},
    }
    settings = ServerSettings.from_config(doc)
    assert settings == ServerSettings(
        tls=TlsSettings(Path("/c.pem"), Path("/k.pem"), Path("/ca.pem")),
        htpasswd=Path("/etc/htpasswd"),
        realm="basic-realm",
        read_only=True,
        delete_enabled=False,  # distribution's default with a config file
    )
    flags = settings.with_flags(tls_cert=Path("/other.pem"), htpasswd=Path("/h2"))
    assert flags.tls == TlsSettings(Path("/other.pem"), Path("/k.pem"), Path("/ca.pem"))
    assert flags.htpasswd == Path("/h2") and flags.read_only
    token = {"realm": "https://a/t", "service": "reg", "issuer": "iss", "rootcertbundle": "/b"}
    doc = {"auth": {"token": token}, "storage": {"delete": {"enabled": True}}}
    settings = ServerSettings.from_config(doc)
    assert settings.token == TokenSettings("https://a/t", "reg", "iss", Path("/b"))
    assert settings.delete_enabled
    assert not settings.with_flags(no_delete=True).delete_enabled
    assert ServerSettings.from_config({}).delete_enabled  # no config file: deletes on
    missing = r"auth\.token\.issuer is missing: .* or as REGISTRY_AUTH_TOKEN_ISSUER"
    with pytest.raises(UsageError, match=missing):
        ServerSettings.from_config({"auth": {"token": {**token, "issuer": ""}}})
    # An auth section present but empty must never leave the registry open.
    for empty in (None, {}):
        with pytest.raises(UsageError, match=r"auth\.htpasswd\.path is missing"):
            ServerSettings.from_config({"auth": {"htpasswd": empty}})
        with pytest.raises(UsageError, match=r"auth\.token\.realm is missing"):
            ServerSettings.from_config({"auth": {"token": empty}})
    with pytest.raises(UsageError, match=r"auth\.silly in the config file"):
        ServerSettings.from_config({"auth": {"silly": {"realm": "x", "service": "y"}}})
    with pytest.raises(UsageError, match="htpasswd or token, not both"):
        ServerSettings.from_config({"auth": {"token": token}}).with_flags(htpasswd=Path("/h"))
