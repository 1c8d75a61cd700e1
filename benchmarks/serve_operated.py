"""`regtool serve` operated (metrics, webhook notifications and access logs on) against
itself with them off and against distribution with its own Prometheus metrics on, same small-image
workload in the same run; then the server's memory with a dead webhook endpoint.

    .venv/bin/python -m benchmarks.serve_operated [--images 200] [--rounds 3] [--pushes 10000]

Every registry runs as its own process on loopback over a fresh local directory, with
the clients of `serve_small_images` (push: HEAD, POST, PUT per blob, then the manifest;
pull: the manifest and each blob). regtool "on": `http.debug.prometheus` enabled and one
notification endpoint, a live receiver in this process that answers 200 to every POST
(scraped once at the end, to check the counters moved), and an access line per request
written to a file. distribution: Debian's
`docker-registry` with `http.debug.prometheus.enabled`. The three run side by side; each
round pushes and pulls new images on each, in a rotated order, and the best round of
each counts (others' load on a shared machine only ever slows a round down); so does
what others' load barely moves, the server's requests per CPU-second (user + system
time of its process). Targets: on/off >= 0.95, on/distribution >= 1.0.

Memory: regtool's app with metrics on and an endpoint nothing listens on, in a process
of its own, takes IMAGES real pushes from the same clients while a thread of that
process hands its notifier PUSHES pushes' worth of events (three each: two blobs, one
manifest) directly; its peak RSS must stay under 150 MiB (the queue holds at most 10,000
events, the rest are dropped and counted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import yaml

from benchmarks.serve_small_images import OCI_MANIFEST as OCI
from benchmarks.serve_small_images import SmallImage, phase, pull, push
from benchmarks.serve_throughput import peak_rss_mib
from tests.services import free_port
from tests.services.distribution import filesystem_storage, start_distribution

MAIN = "from regtool.cli.main import main; main()"
NAMES = ["distribution (metrics on)", "regtool off", "regtool on"]


class Receiver:
    """A webhook receiver: counts the events POSTed to it, answers 200."""

    def __init__(self) -> None:
        self.events = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.events += len(json.loads(body)["events"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/events"


def start_regtool(
    tmp: Path,
    name: str,
    *,
    endpoint: str | None = None,
    metrics: bool = False,
    log_level: str | None = None,
) -> tuple[subprocess.Popen[bytes], str, str]:
    """`regtool serve --config` over `tmp/name`; returns the process, its URL and its
    debug listener's URL. Its lines at `log_level` and above go to `tmp/name.log`: by
    default info (an access line per request) with metrics, else warning."""
    port, debug_port = free_port(), free_port()
    config: dict[str, object] = {
        "version": 0.1,
        "storage": {"filesystem": {"rootdirectory": str(tmp / name)}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    if metrics:
        config["http"] = {
            "addr": f"127.0.0.1:{port}",
            "debug": {"addr": f"127.0.0.1:{debug_port}", "prometheus": {"enabled": True}},
        }
    if endpoint:
        config["notifications"] = {
            "endpoints": [{"name": "bench", "url": endpoint, "timeout": "1s"}]
        }
    path = tmp / f"{name}.yml"
    path.write_text(yaml.safe_dump(config))
    # "on" also logs an access line per request (to a file, as a service's journal
    # would take them); "off" logs warnings only.
    level = log_level or ("info" if metrics else "warning")
    log = (tmp / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", MAIN, "serve", "--config", str(path), "--log-level", level],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url + "/v2/", timeout=1).raise_for_status()
            return proc, url, f"http://127.0.0.1:{debug_port}"
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("regtool serve did not start") from None
            time.sleep(0.05)


def wait_up(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url + "/v2/", timeout=1).raise_for_status()
            return
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("regtool serve did not start") from None
            time.sleep(0.05)


def flood(root: Path, port: int, debug_port: int, pushes: int) -> None:
    """The child of the memory run: regtool's app with a dead endpoint on `port`, its
    debug listener on `debug_port`, and `pushes` pushes' events handed to its notifier."""
    import uvicorn

    from regtool.server.app import create_app
    from regtool.server.debug_server import DebugServer
    from regtool.server.notifications.events import BLOB_MEDIA_TYPE, Target, stamp
    from regtool.server.operations import Operations
    from regtool.server.ops_settings import (
        DebugSettings,
        EndpointSettings,
        HealthSettings,
        NotificationSettings,
        UploadPurgeSettings,
    )
    from regtool.server.protocol import uvicorn_options
    from regtool.storage.local import LocalDriver

    root.mkdir(parents=True, exist_ok=True)
    endpoint = EndpointSettings("dead", dead_url())
    ops = Operations.from_settings(
        DebugSettings(f"127.0.0.1:{debug_port}", True),
        HealthSettings(),
        NotificationSettings((endpoint,)),
        UploadPurgeSettings(enabled=False),
        f"127.0.0.1:{port}",
    )
    app = create_app(LocalDriver(root), ops=ops)
    sock = socket.socket()
    sock.bind(("127.0.0.1", debug_port))
    sock.listen(64)
    debug = DebugServer(ops, sock)
    debug.start()
    ops.start()
    notifier = ops.notifier
    assert notifier is not None

    def drive() -> None:
        scope = {
            "headers": [(b"host", f"127.0.0.1:{port}".encode()), (b"user-agent", b"bench")],
            "client": ("127.0.0.1", 40000),
            "method": "PUT",
            "state": {},
        }
        for n in range(pushes):
            digest = f"sha256:{n:064x}"
            blob = Target("blobs", f"bench/app{n % 20}", digest, BLOB_MEDIA_TYPE, 4096)
            manifest = Target("manifests", blob.repository, digest, OCI, 600, f"t{n}")
            notifier.write(
                [stamp(scope, "push", t, notifier.source) for t in (blob, blob, manifest)]
            )
            if n % 100 == 0:
                time.sleep(0.001)  # as pushes arrive: spread, not all at once

    threading.Thread(target=drive, daemon=True).start()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        **uvicorn_options(5),
    )
    uvicorn.Server(config).run()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    url: str, pid: int, images: list[SmallImage], clients: int
) -> tuple[float, float, float, float]:
    """(push, pull) requests per second, and the server's CPU seconds for each phase."""
    before = cpu_seconds(pid)
    push_rate = asyncio.run(phase(url, images, clients, push))
    middle = cpu_seconds(pid)
    pull_rate = asyncio.run(phase(url, images, clients, pull))
    return push_rate, pull_rate, middle - before, cpu_seconds(pid) - middle


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--pushes", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flood", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        root, port, debug_port, pushes = args.flood
        flood(Path(root), int(port), int(debug_port), int(pushes))
        return
    results: dict[str, list[tuple[float, float, float, float]]] = {n: [] for n in NAMES}
    receiver = Receiver()
    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp_name:
        tmp = Path(tmp_name)
        dist = start_distribution(
            tmp / "dist",
            filesystem_storage(tmp / "dist-store"),
            log_level="error",
            debug={"addr": f"127.0.0.1:{free_port()}", "prometheus": {"enabled": True}},
        )
        off, off_url, _ = start_regtool(tmp, "off")
        on, on_url, debug = start_regtool(tmp, "on", endpoint=receiver.url, metrics=True)
        urls = dict(zip(NAMES, (dist.url, off_url, on_url), strict=True))
        pids = dict(zip(NAMES, (dist.process.pid, off.pid, on.pid), strict=True))
        try:
            # each round new images for all three, in a rotated order: a neighbour's
            # burst of load hits each registry alike
            for r in range(args.rounds):
                images = [SmallImage.make(r * 10_000 + n) for n in range(args.images)]
                for name in NAMES[r % 3 :] + NAMES[: r % 3]:
                    rates = measure(urls[name], pids[name], images, args.clients)
                    results[name].append(rates)
            scraped = httpx.get(f"{debug}/metrics").text
        finally:
            dist.stop()
            stop(off)
            stop(on)
        requests = sum(
            float(line.rsplit(" ", 1)[1])
            for line in scraped.splitlines()
            if line.startswith("regtool_http_requests_total{")
        )
        # RSS with a dead endpoint: real pushes, and PUSHES pushes' events driven directly
        port, debug_port = free_port(), free_port()
        child = ["--flood", str(tmp / "dead"), str(port), str(debug_port), str(args.pushes)]
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.serve_operated", *child])
        url, debug = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{debug_port}"
        try:
            wait_up(proc, url)
            more = [SmallImage.make(1_000_000 + n) for n in range(args.images)]
            push_rate = asyncio.run(phase(url, more, args.clients, push))
            while True:
                lines = httpx.get(f"{debug}/metrics").text.splitlines()
                events = sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in lines
                    if (
                        line.startswith("regtool_notification_events_total{")
                        and 'outcome="dropped"' in line
                    )
                    or line.startswith("regtool_notification_queue_length{")
                )
                if events >= 3 * (args.pushes + args.images) or proc.poll() is not None:
                    break
                time.sleep(0.2)
            dropped = [
                line
                for line in lines
                if line.startswith(("regtool_notification_", "regtool_http_requests_total{"))
                and "POST" not in line
            ]
            rss = peak_rss_mib(proc.pid)
        finally:
            stop(proc)
    receiver.close()
    best = {n: (max(r[0] for r in rs), max(r[1] for r in rs)) for n, rs in results.items()}
    # requests per CPU-second of the server: what others' load on the machine barely moves
    pushed, pulled = 7 * args.images * args.rounds, 3 * args.images * args.rounds
    per_cpu = {
        n: (pushed / sum(r[2] for r in rs), pulled / sum(r[3] for r in rs))
        for n, rs in results.items()
    }
    print(
        f"{args.images} small images a round, {args.rounds} rounds, {args.clients} concurrent "
        "clients, local filesystem"
    )
    for name, (p, q) in best.items():
        rounds = " ".join(f"{r[0]:.0f}/{r[1]:.0f}" for r in results[name])
        c_push, c_pull = per_cpu[name]
        print(
            f"{name:26} best round push {p:5.0f} pull {q:5.0f} req/s ({rounds}); "
            f"per server CPU-second push {c_push:5.0f} pull {c_pull:5.0f} req"
        )
    for label, table in (("best round", best), ("per CPU-second", per_cpu)):
        on_r, off_r, dist_r = table["regtool on"], table["regtool off"], table[NAMES[0]]
        print(
            f"{label:15} on/off push {on_r[0] / off_r[0]:.2f} pull {on_r[1] / off_r[1]:.2f}"
            f" (target >= 0.95);  on/distribution push {on_r[0] / dist_r[0]:.2f}"
            f" pull {on_r[1] / dist_r[1]:.2f} (target >= 1.0)"
        )
    print(f"regtool on: {requests:.0f} requests counted, {receiver.events} events received")
    print(
        f"dead endpoint: {args.images} real pushes at {push_rate:.0f} req/s and "
        f"{args.pushes} pushes' events ({3 * args.pushes}) driven directly: "
        f"peak RSS {rss:.0f} MiB (target < 150)"
    )
    for line in dropped:
        print("  " + line)


if __name__ == "__main__":
    main()
