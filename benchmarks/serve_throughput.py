"""Push and pull throughput of one large blob: `regtool serve` against distribution.

    .venv/bin/python -m benchmarks.serve_throughput [--mib 512] [--rounds 2]

Both registries run as their own processes on loopback, each on a fresh local directory
(distribution: Debian's `docker-registry`). One client (httpx) pushes the blob as one
stream (POST, then PUT ?digest= with the body), then pulls it (GET, streamed and
discarded, its digest checked), `rounds` times each; the best round counts. Prints MiB/s
and regtool's ratio to distribution, and the peak RSS of the regtool process.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.services import free_port
from tests.services.distribution import filesystem_storage, start_distribution

MIB = 1 << 20
REPO = "bench/blob"


def body(block: bytes, total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        chunk = block[: min(len(block), total - sent)]
        sent += len(chunk)
        yield chunk


def push(url: str, block: bytes, total: int, digest: str) -> float:
    with httpx.Client(base_url=url, timeout=600) as client:
        t0 = time.perf_counter()
        r = client.post(f"/v2/{REPO}/blobs/uploads/")
        r.raise_for_status()
        location = r.headers["Location"]
        # distribution's Location carries its own query (`_state`): keep it
        sep = "&" if "?" in location else "?"
        r = client.put(
            f"{location}{sep}digest={digest}",
            content=body(block, total),
            headers={"Content-Type": "application/octet-stream"},
        )
        if r.status_code != 201:
            raise RuntimeError(f"push to {url} failed: {r.status_code} {r.text[:300]}")
        return time.perf_counter() - t0


def pull(url: str, total: int, digest: str) -> float:
    hasher = hashlib.sha256()
    size = 0
    with httpx.Client(base_url=url, timeout=600) as client:
        t0 = time.perf_counter()
        with client.stream("GET", f"/v2/{REPO}/blobs/{digest}") as r:
            r.raise_for_status()
            for chunk in r.iter_raw(MIB):
                hasher.update(chunk)
                size += len(chunk)
        elapsed = time.perf_counter() - t0
    if size != total or "sha256:" + hasher.hexdigest() != digest:
        raise RuntimeError(f"pull from {url} returned other content")
    return elapsed


def wait_ready(url: str, proc: subprocess.Popen[bytes], verify: Any = True) -> None:
    """Returns once the registry at URL answers `/v2/` (any status: it may ask for a
    login); `RuntimeError` (and PROC killed) if PROC ends first or 30 s pass."""
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/v2/", timeout=1, verify=verify)
            return
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{url} did not start") from None
            time.sleep(0.05)


def start_regtool(
    root: Path, log_level: str = "warning", log: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """`regtool serve` on ROOT; its lines at LOG_LEVEL and above go to LOG (else nowhere)."""
    port = free_port()
    out = log.open("ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from regtool.cli.main import main; main()",
            "serve",
            str(root),
            "--addr",
            f"127.0.0.1:{port}",
            "--log-level",
            log_level,
        ],
        stdout=out,
        stderr=out,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (Linux: VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(url: str, block: bytes, total: int, digest: str, rounds: int) -> tuple[float, float]:
    pushes, pulls = [], []
    for _ in range(rounds):
        pushes.append(push(url, block, total, digest))
        pulls.append(pull(url, total, digest))
    return min(pushes), min(pulls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    total = args.mib * MIB
    block = os.urandom(4 * MIB)
    hasher = hashlib.sha256()
    for chunk in body(block, total):
        hasher.update(chunk)
    digest = "sha256:" + hasher.hexdigest()

    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp:
        proc, url = start_regtool(Path(tmp) / "regtool")
        try:
            results["regtool serve"] = measure(url, block, total, digest, args.rounds)
            peak = peak_rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
        reg = start_distribution(
            Path(tmp) / "dist", filesystem_storage(Path(tmp) / "dist-root"), log_level="error"
        )
        try:
            results["distribution"] = measure(reg.url, block, total, digest, args.rounds)
        finally:
            reg.stop()

    print(f"blob: {args.mib} MiB, best of {args.rounds} rounds, one stream, loopback")
    for name, (push_s, pull_s) in results.items():
        print(
            f"{name:14s} push {args.mib / push_s:8.1f} MiB/s   pull {args.mib / pull_s:8.1f} MiB/s"
        )
    print(f"regtool serve peak RSS: {peak:.0f} MiB (bodies are streamed, never held whole)")
    ours, theirs = results["regtool serve"], results["distribution"]
    print(
        f"ratio (regtool / distribution): push {theirs[0] / ours[0]:.2f}   "
        f"pull {theirs[1] / ours[1]:.2f}"
    )


if __name__ == "__main__":
    main()
