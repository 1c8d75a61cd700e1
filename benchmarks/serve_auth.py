"""`regtool serve` with htpasswd and with TLS against distribution with the same.

    .venv/bin/python -m benchmarks.serve_auth [--images 200] [--clients 32] [--mib 512]

1. The small-image workload of `serve_small_images` (CLIENTS concurrent clients push,
   then pull, IMAGES small images) with every request logged in through one htpasswd
   file (bcrypt, distribution's cost 10), against distribution with that file, and
   against regtool without authentication. Targets: regtool with htpasswd >= 1.0x
   distribution's requests per second, and no more than 10% slower than regtool without
   authentication (those two in alternate rounds, the best of each).
2. One 512 MiB blob pulled as a single stream over TLS (a certificate made here, P-256),
   from each registry by curl offering TLS 1.3 suites in Go's order (as docker and
   skopeo do), in alternate rounds, the best of each. Target: regtool >= 0.8x
   distribution.

Every registry runs as its own process on loopback, on a fresh local directory
(distribution: Debian's `docker-registry`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks.serve_small_images import SmallImage, pull, push
from benchmarks.serve_throughput import MIB, REPO, body, wait_ready
from regtool.server.auth.htpasswd import hash_password, write_entry
from tests.services import free_port
from tests.services.certs import make_ca
from tests.services.distribution import filesystem_storage, registry_binary, write_config

USER, PASSWORD = "bench", "bench-password"


def start_regtool(
    root: Path, *extra: str, verify: Any = True
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, "-c", "from regtool.cli.main import main; main()", "serve"]
    args += [str(root), "--addr", f"127.0.0.1:{port}", "--log-level", "warning", *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"{'https' if '--tls-cert' in extra else 'http'}://127.0.0.1:{port}"
    wait_ready(url, proc, verify)
    return proc, url


def start_distribution(
    tmp: Path,
    auth: dict[str, Any] | None = None,
    tls: dict[str, str] | None = None,
    verify: Any = True,
) -> tuple[subprocess.Popen[bytes], str]:
    binary = registry_binary()
    if binary is None:
        raise SystemExit("docker-registry (distribution) is not installed")
    tmp.mkdir(parents=True)
    port = free_port()
    config = write_config(
        tmp / "config.yml", filesystem_storage(tmp / "root"), port=port, log_level="error"
    )
    config["log"]["accesslog"] = {"disabled": True}
    if auth:
        config["auth"] = auth
    if tls:
        config["http"]["tls"] = tls
    (tmp / "config.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [binary, "serve", str(tmp / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    wait_ready(url, proc, verify)
    return proc, url


async def phase(
    url: str,
    images: list[SmallImage],
    clients: int,
    step: Callable[[httpx.AsyncClient, SmallImage], Awaitable[int]],
    auth: tuple[str, str] | None,
) -> float:
    """Requests per second of `step` over all images, `clients` at a time."""
    queue: asyncio.Queue[SmallImage] = asyncio.Queue()
    for image in images:
        queue.put_nowait(image)
    requests = 0

    async def worker() -> None:
        nonlocal requests
        async with httpx.AsyncClient(base_url=url, timeout=60, auth=auth) as client:
            while not queue.empty():
                done = await step(client, queue.get_nowait())
                requests += done

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return requests / (time.perf_counter() - start)


def small_images(url: str, count: int, clients: int, auth: tuple[str, str] | None) -> float:
    """Requests per second over the push and the pull phase together."""
    images = [SmallImage.make(n) for n in range(count)]
    push_rate = asyncio.run(phase(url, images, clients, push, auth))
    pull_rate = asyncio.run(phase(url, images, clients, pull, auth))
    return 2 / (1 / push_rate + 1 / pull_rate)


#: The TLS 1.3 suites in the order Go's clients (docker, skopeo, containerd) offer them
#: on a machine with AES hardware (crypto/tls `defaultCipherSuitesTLS13`).
GO_TLS13_ORDER = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid`, all its threads, so far (proc(5))."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pull_over_tls(url: str, ca: Path, mib: int, server_pid: int) -> tuple[float, float]:
    """MiB/s of one blob of `mib` MiB pushed, then pulled as one stream (best of 2) by
    curl offering Go's TLS 1.3 suites in Go's order: what a registry client asks for,
    from a client whose own cost (C, to /dev/null) stays small beside the server's; and
    the MiB the server sent per second of its CPU time (best of 2), which load from
    elsewhere on the machine disturbs less than the rate."""
    block = os.urandom(4 * MIB)
    total = mib * MIB
    hasher = hashlib.sha256()
    for chunk in body(block, total):
        hasher.update(chunk)
    digest = "sha256:" + hasher.hexdigest()
    with httpx.Client(base_url=url, timeout=600, verify=str(ca)) as client:
        location = client.post(f"/v2/{REPO}/blobs/uploads/").headers["Location"]
        sep = "&" if "?" in location else "?"
        r = client.put(f"{location}{sep}digest={digest}", content=body(block, total))
        r.raise_for_status()
    best, least_cpu = float("inf"), float("inf")
    for _ in range(2):
        t0, cpu0 = time.perf_counter(), cpu_seconds(server_pid)
        done = subprocess.run(
            ["curl", "-sS", "--fail", "--cacert", str(ca), "--tls13-ciphers", GO_TLS13_ORDER,
             "-o", "/dev/null", "-w", "%{size_download}", f"{url}/v2/{REPO}/blobs/{digest}"],
            capture_output=True, check=True,
        )  # fmt: skip
        best = min(best, time.perf_counter() - t0)
        least_cpu = min(least_cpu, cpu_seconds(server_pid) - cpu0)
        assert int(done.stdout) == total, done.stdout
    return mib / best, mib / max(least_cpu, 0.01)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tls-only", action="store_true", help="only the pull over TLS")
    args = parser.parse_args()
    auth = (USER, PASSWORD)
    rates: dict[str, float] = {}
    tls_rates: dict[str, float] = {}
    tls_cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp:
        root = Path(tmp)
        htpasswd = root / "htpasswd"
        write_entry(htpasswd, USER, hash_password(PASSWORD))
        if not args.tls_only:
            proc, url = start_distribution(
                root / "dist", auth={"htpasswd": {"realm": "bench", "path": str(htpasswd)}}
            )
            try:  # one round: bcrypt on every request makes it the slowest by far
                rates["distribution + htpasswd"] = small_images(
                    url, args.images, args.clients, auth
                )
            finally:
                stop(proc)
            # regtool with and without logins in alternate rounds (fresh images each), the
            # best of each: on a shared machine, load from elsewhere comes and goes.
            with_auth, url_auth = start_regtool(root / "regtool-auth", "--htpasswd", str(htpasswd))
            without, url_open = start_regtool(root / "regtool-open")
            try:
                for _ in range(args.rounds):
                    for name, url, login in (
                        ("regtool + htpasswd", url_auth, auth),
                        ("regtool, no auth", url_open, None),
                    ):
                        rate = small_images(url, args.images, args.clients, login)
                        rates[name] = max(rates.get(name, 0.0), rate)
            finally:
                stop(with_auth)
                stop(without)

        ca = make_ca(root / "ca", "bench CA")
        server = ca.issue(root / "server", "127.0.0.1")
        tls = {"certificate": str(server.cert), "key": str(server.key)}
        dist, url_dist = start_distribution(root / "dist-tls", tls=tls, verify=str(ca.cert))
        ours, url_ours = start_regtool(
            root / "regtool-tls",
            "--tls-cert", str(server.cert), "--tls-key", str(server.key),
            verify=str(ca.cert),
        )  # fmt: skip
        try:
            for _ in range(args.rounds):
                for name, url in (("distribution", url_dist), ("regtool", url_ours)):
                    proc = dist if name == "distribution" else ours
                    rate, per_cpu = pull_over_tls(url, ca.cert, args.mib, proc.pid)
                    tls_rates[name] = max(tls_rates.get(name, 0.0), rate)
                    tls_cpu[name] = max(tls_cpu.get(name, 0.0), per_cpu)
        finally:
            stop(dist)
            stop(ours)

    if rates:
        print(f"{args.images} small images, {args.clients} clients, push + pull, loopback")
        for name, rate in rates.items():
            print(f"  {name:26s} {rate:7.0f} req/s")
        ours_rate = rates["regtool + htpasswd"]
        print(
            "  regtool+htpasswd / distribution+htpasswd: "
            f"{ours_rate / rates['distribution + htpasswd']:.2f} (target >= 1.0); "
            f"cost of auth: {1 - ours_rate / rates['regtool, no auth']:.1%} (target <= 10%)"
        )
    print(f"{args.mib} MiB blob, one stream, pulled over TLS (best of {2 * args.rounds})")
    for name, rate in tls_rates.items():
        print(f"  {name:26s} {rate:7.1f} MiB/s, {tls_cpu[name]:7.1f} MiB per server CPU second")
    print(
        f"  regtool / distribution: {tls_rates['regtool'] / tls_rates['distribution']:.2f}"
        f" (target >= 0.8); per CPU second: {tls_cpu['regtool'] / tls_cpu['distribution']:.2f}"
    )


if __name__ == "__main__":
    main()
