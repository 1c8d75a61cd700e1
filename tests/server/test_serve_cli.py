"""`regtool serve` as a user runs it: a process that says where it listens and what it
serves, logs each request, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from regtool.cli.serve import parse_addr
from regtool.errors import UsageError
from tests.services import free_port
from tests.services import images as img

_MAIN = "from regtool.cli.main import main; main()"


def serve_process(
    args: list[str], url: str, during: Callable[[str], None], env: dict[str, str] | None = None
) -> tuple[str, httpx.Response]:
    """`regtool serve ARGS` until it answers at `url` (any status, any certificate),
    `during(url)`, then Ctrl-C; returns what it printed and its first answer to
    `GET /v2/`. It must exit 0 without a traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _MAIN, "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                first = httpx.get(f"{url}/v2/", timeout=1, verify=False)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        during(url)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    return out, first


def run_serve(
    args: list[str], port: int, during: Callable[[str], None], env: dict[str, str] | None = None
) -> str:
    """`serve_process` on plain HTTP at `port`, which answers `/v2/` as a registry does."""
    out, first = serve_process(args, f"http://127.0.0.1:{port}", during, env)
    assert first.status_code == 200
    assert first.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    return out


def test_serve_process_starts_logs_and_stops(tmp_path: Path) -> None:
    port = free_port()
    store = tmp_path / "new-store"  # created on first run

    def during(url: str) -> None:
        assert httpx.get(f"{url}/v2/_catalog").json() == {"repositories": []}

    out = run_serve([str(store), "--addr", f"127.0.0.1:{port}"], port, during)
    assert f"listening on http://127.0.0.1:{port}" in out
    assert f"storage {store}" in out
    assert '"GET /v2/_catalog HTTP/1.1" 200' in out  # the access log
    assert store.is_dir()


def test_serve_config_file(tmp_path: Path) -> None:
    """With a distribution config, serve takes its storage and its http.addr."""
    port = free_port()
    root = tmp_path / "root"
    config = tmp_path / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    out = run_serve(["--config", str(config)], port, lambda url: None)
    assert f"storage {root}" in out


@pytest.mark.swift
@pytest.mark.usefixtures("image_tools")
def test_serve_swift_location(swift_service: Any, tmp_path: Path, cli: Any) -> None:
    """`regtool serve swift://container` with ST_* credentials; the key is never shown;
    the container is created on start-up, as distribution does."""
    container = f"serve-cli-{uuid.uuid4().hex[:8]}"
    env = {"ST_AUTH": swift_service.auth_url, "ST_USER": swift_service.user}
    env["ST_KEY"] = swift_service.key
    port = free_port()
    image = img.build_image(tmp_path / "oci", "v1", size=2000)
    pushed: list[str] = []

    def during(url: str) -> None:
        pushed.append(img.push(image, f"127.0.0.1:{port}", "library/exampleapp", "1.0"))

    out = run_serve([f"swift://{container}", "--addr", f"127.0.0.1:{port}"], port, during, env)
    assert f"storage swift://{container} (swift)" in out
    assert swift_service.key not in out
    assert pushed == [image.digest]
    doc = cli.json("ls", f"swift://{container}", env=env)
    assert [t["digest"] for r in doc["repositories"] for t in r["tags"]] == [image.digest]


def test_bad_addr_is_a_usage_error(cli: Any) -> None:
    assert parse_addr(":5000") == ("0.0.0.0", 5000)
    assert parse_addr("[::1]:80") == ("::1", 80)
    with pytest.raises(UsageError):
        parse_addr("localhost")
    result = cli("serve", "--addr", "nope")
    assert result.exit_code == 2
    assert "--addr must be HOST:PORT" in result.stderr


def test_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """The socket is bound before anything says where the server listens: a busy port
    is one line naming the address and the cause, exit 2, nothing else."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                _MAIN,
                "serve",
                str(tmp_path / "s"),
                "--addr",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_bad_log_level_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    result = cli("serve", str(tmp_path / "s"), "--log-level", "loud")
    assert result.exit_code == 2
    assert "--log-level must be one of" in result.stderr


def test_tls_probe_is_one_warning_naming_the_cause(tmp_path: Path) -> None:
    port = free_port()

    def during(url: str) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(bytes.fromhex("16030100050100000100"))
            assert sock.recv(100) == b""

    out = run_serve([str(tmp_path / "s"), "--addr", f"127.0.0.1:{port}"], port, during)
    lines = [line for line in out.splitlines() if "TLS" in line]
    assert len(lines) == 1 and "this port speaks plain HTTP" in lines[0], out
    assert "Invalid HTTP request" not in out


def test_ctrl_c_cuts_a_stalled_upload_short_after_the_shutdown_timeout(tmp_path: Path) -> None:
    """A client that stalls mid-upload keeps Ctrl-C waiting `--shutdown-timeout` seconds,
    not for ever; its upload goes on afterwards from what it held."""
    store, port = str(tmp_path / "s"), free_port()
    committed, rest = b"c" * 100, b"r" * 10
    digest = "sha256:" + hashlib.sha256(committed + rest).hexdigest()
    stalled = socket.socket()
    locations: list[str] = []

    def during(url: str) -> None:
        location = httpx.URL(httpx.post(f"{url}/v2/app/blobs/uploads/").headers["Location"]).path
        assert httpx.patch(f"{url}{location}", content=committed).status_code == 202
        stalled.connect(("127.0.0.1", port))
        stalled.sendall(
            f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nxx".encode()
        )
        # The stalled request holds the upload's lease once it is under way: a probe (a
        # chunk at a wrong offset, which changes nothing) is refused as busy from then on.
        probe = {"Content-Range": "0-0"}
        while (
            "another request"
            not in httpx.patch(f"{url}{location}", content=b"y", headers=probe).text
        ):
            pass
        locations.append(location)

    with stalled:
        out = run_serve(
            [store, "--addr", f"127.0.0.1:{port}", "--shutdown-timeout", "1"], port, during
        )
        assert stalled.recv(100).startswith(b"HTTP/1.1 503 ")
    assert "cut short: the server is stopping" in out

    def resume(url: str) -> None:
        r = httpx.put(f"{url}{locations[0]}", params={"digest": digest}, content=rest)
        assert r.status_code == 201, r.text

    run_serve([store, "--addr", f"127.0.0.1:{port}"], port, resume)


def test_help_names_each_value_as_the_other_commands_do(cli: Any) -> None:
    result = cli("serve", "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage: regtool serve [OPTIONS] [LOCATION]\n" in result.stdout
    options = result.stdout.split("Options:", 1)[1]
    for shown in ("--addr HOST:PORT", "--log-level LEVEL", "--shutdown-timeout SECONDS"):
        assert shown in options
    assert "<str>" not in options and "<int>" not in options


def test_a_client_gone_mid_request_is_one_line_at_the_default_level(tmp_path: Path) -> None:
    """regtool's own info lines reach the log at `--log-level info` (the default), as
    uvicorn's do; at `warning` they do not."""
    store, port = str(tmp_path / "s"), free_port()

    def cut_a_patch(url: str) -> None:
        location = httpx.URL(httpx.post(f"{url}/v2/app/blobs/uploads/").headers["Location"]).path
        with socket.create_connection(("127.0.0.1", port)) as cut:
            cut.sendall(
                f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nxx".encode()
            )
        # The cut request is over once the upload is free again: a chunk at offset 0 lands.
        while httpx.patch(f"{url}{location}", content=b"y").status_code != 202:
            pass

    out = run_serve([store, "--addr", f"127.0.0.1:{port}"], port, cut_a_patch)
    assert out.count("the client disconnected before the end of its request") == 1, out
    out = run_serve(
        [store, "--addr", f"127.0.0.1:{port}", "--log-level", "warning"], port, cut_a_patch
    )
    assert "disconnected" not in out, out


def test_serve_config_debug_listener(tmp_path: Path) -> None:
    """`http.debug.addr` of the config file: metrics and health on a second listener."""
    from prometheus_client.parser import text_string_to_metric_families

    port, debug_port = free_port(), free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'root'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  debug:\n    addr: 127.0.0.1:{debug_port}\n"
        "    prometheus:\n      enabled: true\n"
        "health:\n  storagedriver:\n    enabled: true\n    interval: 1s\n"
    )

    def during(url: str) -> None:
        debug = f"http://127.0.0.1:{debug_port}"
        assert httpx.get(f"{url}/v2/_catalog").status_code == 200
        r = httpx.get(f"{debug}/debug/health")
        assert (r.status_code, r.json()) == (200, {})
        assert httpx.get(f"{debug}/").status_code == 200
        text = httpx.get(f"{debug}/metrics").text
        samples = {
            (s.name, s.labels.get("route"), s.labels.get("status")): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
        }
        assert samples[("regtool_http_requests_total", "catalog", "200")] == 1

    out = run_serve(["--config", str(config)], port, during)
    assert f"debug listener on 127.0.0.1:{debug_port}" in out


def test_busy_debug_port_is_one_line_and_exit_2(tmp_path: Path, cli: Any) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        debug_port = busy.getsockname()[1]
        config = tmp_path / "config.yml"
        config.write_text(
            f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'r'}\n"
            f"http:\n  addr: 127.0.0.1:{free_port()}\n"
            f"  debug:\n    addr: 127.0.0.1:{debug_port}\n"
        )
        r = cli("serve", "--config", str(config))
    assert r.exit_code == 2, r.output
    assert f"cannot listen on 127.0.0.1:{debug_port}" in r.output
    assert "Traceback" not in r.output


def test_invalid_operations_key_is_one_line_and_exit_2(tmp_path: Path, cli: Any) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'r'}\n"
        "health:\n  storagedriver:\n    enabled: true\n    interval: soon\n"
    )
    r = cli("serve", "--config", str(config))
    assert r.exit_code == 2, r.output
    assert "health.storagedriver.interval" in r.output
    assert "Traceback" not in r.output
