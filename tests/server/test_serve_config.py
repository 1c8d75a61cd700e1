"""`regtool serve --config` as a process. Its logs: one access line per request in
`log.formatter`, the request id in every line of that request and in its
`X-Request-Id`, `log.fields` on each line, never a credential. SIGTERM: it drains and
exits 0. `http.net: unix` serves on a socket; a `storage.sftp` section serves from SFTP."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx

from regtool.server.auth.htpasswd import hash_password, write_entry
from tests.server.serve_proc import answers, start_serve, stop_serve
from tests.server.test_serve_cli import serve_process
from tests.services import free_port


def test_json_lines_carry_the_request_id_and_no_credentials(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    write_entry(htpasswd, "alice", hash_password("alice-pw", cost=4))
    port = free_port()
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        f"version: 0.1\nlog:\n  formatter: json\n  fields: {{service: registry}}\n"
        f"storage:\n  filesystem: {{rootdirectory: {tmp_path / 's'}}}\n"
        f"auth:\n  htpasswd: {{realm: r, path: {htpasswd}}}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    ids: dict[str, str] = {}

    def during(url: str) -> None:
        r = httpx.get(f"{url}/v2/_catalog?token=T0kenInQuery", auth=("alice", "Wr0ngPass"))
        assert r.status_code == 401
        ids["failed"] = r.headers["X-Request-Id"]
        r = httpx.get(f"{url}/v2/_catalog", auth=("alice", "alice-pw"))
        assert r.status_code == 200
        ids["ok"] = r.headers["X-Request-Id"]

    out, _ = serve_process(["--config", str(cfg)], f"http://127.0.0.1:{port}", during)
    for secret in ("T0kenInQuery", "Wr0ngPass", "alice-pw", "Basic "):
        assert secret not in out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert lines and all(line["service"] == "registry" for line in lines)
    mine = [line for line in lines if line.get("http.request.id") == ids["failed"]]
    assert [line["msg"].split(" ")[0] for line in mine] == ["failed", "127.0.0.1"]
    access = mine[1]
    assert access["http.request.uri"] == "/v2/_catalog?token=***"
    assert access["http.response.status"] == 401 and access["level"] == "info"
    assert '"GET /v2/_catalog?token=*** HTTP/1.1" 401' in access["msg"]
    ok = [line for line in lines if line.get("http.request.id") == ids["ok"]]
    assert len(ok) == 1 and ok[0]["http.response.status"] == 200


def test_sigterm_drains_and_exits_0_and_unix_sockets(tmp_path: Path) -> None:
    sock = tmp_path / "registry.sock"
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {tmp_path / 's'}}}\n"
        f"http:\n  net: unix\n  addr: {sock}\n  draintimeout: 10s\n"
    )
    proc = start_serve(["--config", str(cfg)], sock.exists)
    transport = httpx.HTTPTransport(uds=str(sock))
    with httpx.Client(transport=transport, base_url="http://registry") as client:
        assert client.get("/v2/").status_code == 200
        assert client.get("/v2/_catalog").json() == {"repositories": []}
    out = stop_serve(proc)  # SIGTERM: exit 0
    assert f"listening on unix socket {sock}" in out
    assert "Traceback" not in out


def test_serve_from_an_sftp_storage_section(sshd_service: Any, tmp_path: Path) -> None:
    """regtool's own `storage.sftp` section against a real sshd: what is pushed through
    the server lands in the directory the section names."""
    root = sshd_service.data_root / "from-config"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        f"version: 0.1\nstorage:\n  sftp:\n    host: {sshd_service.host}\n"
        f"    port: {sshd_service.port}\n    username: {sshd_service.username}\n"
        f"    path: {root}\n    identityfile: {sshd_service.key_path}\n"
        f"    knownhosts: {sshd_service.known_hosts}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    url = f"http://127.0.0.1:{port}"
    proc = start_serve(["--config", str(cfg)], answers(url))
    try:
        data = b"pushed over sftp"
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        location = httpx.post(f"{url}/v2/app/blobs/uploads/").headers["Location"]
        assert httpx.put(location, params={"digest": digest}, content=data).status_code == 201
        assert httpx.get(f"{url}/v2/app/blobs/{digest}").content == data
    finally:
        out = stop_serve(proc)
    assert (
        f"storage sftp://{sshd_service.username}@{sshd_service.host}:{sshd_service.port}{root}"
        in out
    )
    stored = root / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data"
    assert stored.read_bytes() == data
