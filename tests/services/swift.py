"""A real OpenStack Swift on loopback: one proxy + account + container + object server.

    swift = start_swift(tmp_path)
    swift.auth_url      # "http://127.0.0.1:PORT/auth/v1.0" (tempauth, v1)
    swift.user, swift.key   # "test:tester", "testing" (an .admin of account AUTH_test)
    swift.storage_url   # "http://127.0.0.1:PORT/v1/AUTH_test"
    swift.driver("container", "prefix", segment_size=64 * 1024)  # a SwiftDriver
    small = swift.constrained_proxy(container_listing_limit=100)  # a second proxy
    small.auth_url, small.credentials()                             # ... of the same cluster
    swift.stop()

Everything lives in `tmpdir`: rings, configs, devices, logs. Swift normally reads its hash
path suffix from /etc/swift/swift.conf; every config here sets `swift_dir = tmpdir`, and
swift then reads `tmpdir/swift.conf` instead (swift.common.wsgi calls `set_swift_dir`
before validating the configuration), so nothing outside tmpdir is touched.

tempauth keeps its tokens in memcached, so Debian's memcached runs on a free port too.

`constrained_proxy` starts, on first use, one more proxy server in front of the same
account, container and object servers, whose own swift.conf sets `[swift-constraints]`
(a cluster with a lower `container_listing_limit` or `max_file_size`, which its `/info`
publishes and its proxy enforces): one process, about a second, only for tests that ask.
Swift reads `[swift-constraints]` once, from /etc/swift/swift.conf, when
swift.common.constraints is first imported (`swift_dir` does not change that, and other
modules copy the values as they import them), so that proxy is started by a few lines
that point swift at its own swift.conf before anything imports the constraints.
"""

from __future__ import annotations

import contextlib
import getpass
import http.client
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote

from regtool.storage.swift import SwiftCredentials, SwiftDriver
from tests.services import free_port

#: How long start_swift waits for healthcheck, auth and every server to answer.
START_TIMEOUT = 60.0
USER = "test:tester"
KEY = "testing"
ACCOUNT = "AUTH_test"
DEVICE = "d1"
SERVERS = ("account", "container", "object", "proxy")

# Rings are built in one child process: importing swift here would pull eventlet into
# the test process, and one process is faster than nine swift-ring-builder runs.
_RING_SCRIPT = """
import sys
from swift.common.ring import RingBuilder
swift_dir, device = sys.argv[1], sys.argv[2]
for kind, port in zip(("account", "container", "object"), map(int, sys.argv[3:6])):
    builder = RingBuilder(6, 1, 1)  # 64 partitions, 1 replica, min_part_hours 1
    builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": port,
                     "device": device, "weight": 100.0})
    builder.rebalance()
    builder.save(f"{swift_dir}/{kind}.builder")
    builder.get_ring().save(f"{swift_dir}/{kind}.ring.gz")
"""


# argv: swift.conf, proxy-server.conf, options.
_CONSTRAINED_PROXY = """
import sys
import swift.common.utils as utils
utils.SWIFT_CONF_FILE = sys.argv.pop(1)
from swift.proxy.server import main
main()
"""


def _memcached_binary() -> str:
    found = shutil.which("memcached") or (
        "/usr/bin/memcached" if Path("/usr/bin/memcached").exists() else None
    )
    if not found:
        raise RuntimeError("memcached is not installed (Debian package `memcached`)")
    return found


def _swift_script(name: str) -> list[str]:
    """The venv's console script for a swift server, run with this interpreter."""
    script = Path(sys.executable).parent / name
    if not script.exists():
        raise RuntimeError(f"{script} not found: is the `swift` package installed?")
    return [sys.executable, str(script)]


def _http(
    method: str, host: str, port: int, path: str, headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


@dataclass(frozen=True)
class SwiftProxy:
    """One more proxy server of the running Swift, with constraints of its own."""

    port: int
    constraints: dict[str, int]

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/auth/v1.0"

    @property
    def storage_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/{ACCOUNT}"

    def credentials(self) -> SwiftCredentials:
        return SwiftCredentials(auth_url=self.auth_url, user=USER, key=KEY)


class SwiftService:
    """A running Swift. Attributes: auth_url, user, key, storage_url, tmpdir."""

    def __init__(self, tmpdir: Path, ports: dict[str, int], memcached_port: int) -> None:
        self.tmpdir = tmpdir
        self.ports = ports
        self.memcached_port = memcached_port
        self._proxies: dict[tuple[tuple[str, int], ...], SwiftProxy] = {}
        self._proxies_lock = threading.Lock()
        self.proxy_port = proxy_port = ports["proxy"]
        self.auth_url = f"http://127.0.0.1:{proxy_port}/auth/v1.0"
        self.user = USER
        self.key = KEY
        self.storage_url = f"http://127.0.0.1:{proxy_port}/v1/{ACCOUNT}"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    # --- processes -------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.tmpdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs[name] = log
        self._procs[name] = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def pids(self) -> dict[str, int]:
        """The process id of each server started (`proxy`, `object`, ...; a server with
        workers forks its workers below it)."""
        return {name: proc.pid for name, proc in self._procs.items()}

    def logs(self, lines: int = 15) -> str:
        """The last lines of every server's log, for error messages."""
        return "\n".join(
            f"--- {name} ---\n{_tail(self.tmpdir / f'{name}.log', lines)}" for name in self._procs
        )

    def stop(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for log in self._logs.values():
            log.close()
        self._procs.clear()
        self._logs.clear()

    # --- clients ---------------------------------------------------------------------
    def credentials(self) -> SwiftCredentials:
        return SwiftCredentials(auth_url=self.auth_url, user=self.user, key=self.key)

    def token(self) -> str:
        """A fresh tempauth token for the test user."""
        resp = _http(
            "GET",
            "127.0.0.1",
            self.proxy_port,
            "/auth/v1.0",
            {"X-Auth-User": self.user, "X-Auth-Key": self.key},
        )
        token = resp.getheader("X-Auth-Token")
        if resp.status != 200 or not token:
            raise RuntimeError(f"tempauth login failed: {resp.status} {resp.reason}")
        return token

    def create_container(self, name: str) -> None:
        resp = _http(
            "PUT",
            "127.0.0.1",
            self.proxy_port,
            f"/v1/{ACCOUNT}/{name}",
            {"X-Auth-Token": self.token()},
        )
        if resp.status not in (201, 202):
            raise RuntimeError(f"cannot create container {name}: {resp.status} {resp.reason}")

    def driver(
        self, container: str, prefix: str = "", segment_size: int = 20 * 1024 * 1024
    ) -> SwiftDriver:
        self.create_container(container)
        return SwiftDriver(self.credentials(), container, prefix, segment_size=segment_size)

    def constrained_proxy(self, **constraints: int) -> SwiftProxy:
        """A second proxy server of this Swift whose swift.conf has `[swift-constraints]`
        `constraints` (e.g. `container_listing_limit=100`), started on first use and
        kept until `stop()`. Tokens and data are shared with the main proxy."""
        key = tuple(sorted(constraints.items()))
        with self._proxies_lock:
            if key not in self._proxies:
                self._proxies[key] = self._start_proxy(f"proxy-{len(self._proxies) + 1}", key)
            return self._proxies[key]

    def _start_proxy(self, name: str, constraints: tuple[tuple[str, int], ...]) -> SwiftProxy:
        swift_dir = self.tmpdir / name
        swift_dir.mkdir()
        for kind in ("account", "container", "object"):
            (swift_dir / f"{kind}.ring.gz").symlink_to(self.tmpdir / f"{kind}.ring.gz")
        lines = "".join(f"{k} = {v}\n" for k, v in constraints)
        (swift_dir / "swift.conf").write_text(SWIFT_CONF + f"\n[swift-constraints]\n{lines}")
        proxy = SwiftProxy(free_port(), dict(constraints))
        conf = swift_dir / "proxy-server.conf"
        conf.write_text(
            _proxy_config(swift_dir, self.tmpdir / "devices", proxy.port, self.memcached_port)
        )
        argv = [sys.executable, "-c", _CONSTRAINED_PROXY, str(swift_dir / "swift.conf")]
        self._spawn(name, [*argv, str(conf), "-v"])
        self.wait_ready([], port=proxy.port)
        return proxy

    def add_listing_entries(self, container: str, names: list[str], size: int = 1) -> None:
        """Record `names` in the container's listing without storing any object, the way
        an object server reports a new object to its container server.

        For listing tests that need more names than uploads allow in a few seconds (a
        single-process Swift stores ~250 objects a second; this records ~2,000). GET and
        DELETE of such a name answer 404: only listings see it.
        """
        out = subprocess.run(
            [
                *_swift_script("swift-get-nodes"),
                "--swift-dir",
                str(self.tmpdir),
                str(self.tmpdir / "container.ring.gz"),
                ACCOUNT,
                container,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        match = re.search(r"^Partition\s+(\d+)", out, re.MULTILINE)
        if not match:
            raise RuntimeError(f"swift-get-nodes gave no partition:\n{out}")
        base = f"/{DEVICE}/{match[1]}/{ACCOUNT}/{container}/"
        local = threading.local()
        opened: list[http.client.HTTPConnection] = []

        def record(name: str) -> None:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(
                    "127.0.0.1", self.ports["container"], timeout=30
                )
                opened.append(conn)
            conn.request(
                "PUT",
                base + quote(name),
                headers={
                    "X-Timestamp": f"{time.time():016.5f}",
                    "X-Size": str(size),
                    "X-Content-Type": "application/octet-stream",
                    "X-Etag": "d41d8cd98f00b204e9800998ecf8427e",
                    "X-Backend-Storage-Policy-Index": "0",
                },
            )
            resp = conn.getresponse()
            resp.read()
            if resp.status != 201:
                raise RuntimeError(f"container update for {name}: {resp.status} {resp.reason}")

        try:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(record, names))
        finally:
            for conn in opened:
                conn.close()

    # --- readiness -------------------------------------------------------------------
    def _ready(self, backend_ports: list[int], port: int) -> bool:
        try:
            if _http("GET", "127.0.0.1", port, "/healthcheck").status != 200:
                return False
            if not all(_port_open(p) for p in backend_ports):
                return False
            token = self.token()
            # HEAD of the account goes through the proxy to the account server.
            resp = _http("HEAD", "127.0.0.1", port, f"/v1/{ACCOUNT}", {"X-Auth-Token": token})
            return resp.status in (200, 204)
        except (OSError, http.client.HTTPException, RuntimeError):
            return False

    def wait_ready(
        self, backend_ports: list[int], timeout: float = START_TIMEOUT, port: int | None = None
    ) -> None:
        """Wait until the proxy at `port` (the main one by default) and `backend_ports`
        answer; RuntimeError with the servers' logs if a server exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"swift {name} server exited with {proc.returncode}\n{self.logs()}"
                    )
            if self._ready(backend_ports, port or self.proxy_port):
                return
            time.sleep(0.2)
        raise RuntimeError(f"Swift did not become ready in {timeout:.0f} s\n{self.logs()}")


SWIFT_CONF = textwrap.dedent("""\
    [swift-hash]
    swift_hash_path_suffix = regtool-tests
    swift_hash_path_prefix = regtool-tests

    [storage-policy:0]
    name = Policy-0
    default = yes
    """)


def _common(name: str, swift_dir: Path, devices: Path, port: int, workers: int = 0) -> str:
    """The [DEFAULT] section every server's config starts with (`workers` 0: the server
    answers in the process started, without forking)."""
    return textwrap.dedent(f"""\
        [DEFAULT]
        swift_dir = {swift_dir}
        devices = {devices}
        mount_check = false
        disable_fallocate = true
        bind_ip = 127.0.0.1
        bind_port = {port}
        workers = {workers}
        user = {getpass.getuser()}
        log_level = INFO
        log_name = {name}

        """)


def _proxy_config(
    swift_dir: Path, devices: Path, port: int, memcached_port: int, workers: int = 0
) -> str:
    return _common("proxy", swift_dir, devices, port, workers) + textwrap.dedent(f"""\
        [pipeline:main]
        pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats
            bulk tempurl tempauth copy slo dlo proxy-logging proxy-server

        [app:proxy-server]
        use = egg:swift#proxy
        account_autocreate = true
        allow_account_management = true
        # Quick failure detection on loopback; the defaults assume a real network.
        conn_timeout = 2
        node_timeout = 30

        [filter:catch_errors]
        use = egg:swift#catch_errors

        [filter:gatekeeper]
        use = egg:swift#gatekeeper

        [filter:healthcheck]
        use = egg:swift#healthcheck

        [filter:proxy-logging]
        use = egg:swift#proxy_logging

        [filter:cache]
        use = egg:swift#memcache
        memcache_servers = 127.0.0.1:{memcached_port}

        [filter:listing_formats]
        use = egg:swift#listing_formats

        [filter:bulk]
        use = egg:swift#bulk

        [filter:tempurl]
        use = egg:swift#tempurl

        [filter:tempauth]
        use = egg:swift#tempauth
        user_test_tester = {KEY} .admin

        [filter:copy]
        use = egg:swift#copy

        [filter:slo]
        use = egg:swift#slo

        [filter:dlo]
        use = egg:swift#dlo
        # Swift's defaults, as in production: after the 10th segment of a DLO GET, one
        # segment a second (rate_limit_after_segment, rate_limit_segments_per_sec).
        """)


# The object server waits up to `container_update_timeout` (1 s by default) for the
# container server to list a new object, then answers and leaves the update to the
# object-updater, which no test runs: a container server starved that long (a loaded
# machine) would leave objects written but never listed.
OBJECT_UPDATES = "container_update_timeout = 30\nnode_timeout = 30\n"


def _write_configs(
    tmpdir: Path, ports: dict[str, int], memcached_port: int, workers: int = 0
) -> None:
    devices = tmpdir / "devices"
    (devices / DEVICE).mkdir(parents=True, exist_ok=True)
    (tmpdir / "run").mkdir(exist_ok=True)
    (tmpdir / "swift.conf").write_text(SWIFT_CONF)
    for kind in ("account", "container", "object"):
        (tmpdir / f"{kind}-server.conf").write_text(
            _common(kind, tmpdir, devices, ports[kind], workers)
            + f"[pipeline:main]\npipeline = {kind}-server\n\n"
            + f"[app:{kind}-server]\nuse = egg:swift#{kind}\n"
            + (OBJECT_UPDATES if kind == "object" else "")
        )
    (tmpdir / "proxy-server.conf").write_text(
        _proxy_config(tmpdir, devices, ports["proxy"], memcached_port, workers)
    )


def start_swift(tmpdir: Path, workers: int = 0) -> SwiftService:
    """Start memcached and the four Swift servers on loopback; wait until they answer.

    `workers`: processes each server forks to answer requests (Swift's `workers`); 0,
    for tests, answers in the one process started, as a production Swift does not (it
    runs a worker a core). Benchmarks that compare tools on one Swift may ask for more.

    Raises RuntimeError (with the servers' last log lines) if Swift cannot start.
    """
    tmpdir = Path(tmpdir).resolve()  # swift servers chdir to / on start
    tmpdir.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in SERVERS}
    memcached_port = free_port()
    service = SwiftService(tmpdir, ports, memcached_port)
    try:
        memcached = [
            _memcached_binary(),
            "-l",
            "127.0.0.1",
            "-p",
            str(memcached_port),
            "-U",
            "0",
            "-m",
            "32",
        ]
        if getpass.getuser() == "root":
            memcached += ["-u", "root"]  # memcached refuses to run as root without it
        service._spawn("memcached", memcached)
        _write_configs(tmpdir, ports, memcached_port, workers)
        subprocess.run(
            [
                sys.executable,
                "-c",
                _RING_SCRIPT,
                str(tmpdir),
                DEVICE,
                *(str(ports[k]) for k in ("account", "container", "object")),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for name in SERVERS:
            service._spawn(
                name,
                [*_swift_script(f"swift-{name}-server"), str(tmpdir / f"{name}-server.conf"), "-v"],
            )
        service.wait_ready([ports[k] for k in ("account", "container", "object")])
    except subprocess.CalledProcessError as e:
        service.stop()
        raise RuntimeError(
            f"building the rings failed: {e.stderr.decode(errors='replace')}"
        ) from None
    except BaseException:
        with contextlib.suppress(Exception):
            service.stop()
        raise
    return service
