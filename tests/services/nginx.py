"""nginx (Debian's `nginx-light`) in front of a registry: TLS terminated on a loopback
port, requests passed to a Unix socket with distribution's recommended headers
(`Host`, `X-Forwarded-Proto`), bodies streamed (no request buffering, no size limit).
The registry behind it is reachable only through nginx, so a `Location` that points
anywhere else fails the client.

    with running_nginx(tmp_path, socket_path, cert, key) as proxy:
        proxy.host                # 127.0.0.1:PORT (HTTPS)
        proxy.access_log()        # the request lines nginx passed on
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.services import free_port, unavailable

CONFIG = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream registry {{ server unix:{socket}; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        client_max_body_size 0;
        chunked_transfer_encoding on;
        location /v2/ {{
            proxy_pass http://registry;
            proxy_http_version 1.1;
            proxy_request_buffering off;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 900;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    host: str
    dir: Path

    def access_log(self) -> list[str]:
        return (self.dir / "access.log").read_text().splitlines()


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        unavailable("nginx is not installed (Debian package nginx-light)")
    return found


@contextlib.contextmanager
def running_nginx(dir: Path, upstream: Path, cert: Path, key: Path) -> Iterator[Nginx]:
    """nginx on a free loopback port until the block ends."""
    binary = nginx_binary()
    dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = dir / "nginx.conf"
    conf.write_text(CONFIG.format(dir=dir, socket=upstream, port=port, cert=cert, key=key))
    # One process, in the foreground, as the user running the tests.
    proc = subprocess.Popen(
        [binary, "-p", str(dir), "-c", str(conf), "-g", "daemon off; master_process off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                unavailable(f"nginx did not start: {proc.communicate()[1][-500:]}")
            time.sleep(0.05)
        yield Nginx(f"127.0.0.1:{port}", dir)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
