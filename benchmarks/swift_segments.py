"""Large blobs on Swift, read by their segments: a blob GET from `regtool serve` against
distribution on the same Swift, and `regtool verify` of one blob against `swift download`
of it, in the same run.

    .venv/bin/python -m benchmarks.swift_segments [--get-mib 512] [--verify-mib 1024]
        [--rounds 2] [--swift-workers N]

Starts a real Swift on loopback with the DLO middleware's default rate limit (after the
10th segment of a GET, one segment a second) and stores blobs as distribution's Swift
driver does: DLOs of 20 MiB segments (512 MiB: 26 segments). Swift's servers run
`--swift-workers` worker processes each (default: one a core, as a production proxy
does; the tests' Swift runs none), the same for both tools.

1. Blob GET: `regtool serve swift://<c>` and distribution (Debian's `docker-registry`,
   its Swift driver on the same container) each serve the blob; one client streams it and
   checks its digest, `--rounds` times; the best round counts. The client reads into one
   buffer with `http.client` and hashes as it goes: about 1 CPU second a GiB, where
   httpx's streaming takes about 3, so that on a small machine it leaves the CPU to the
   servers measured.
2. Verify: `regtool verify --all` of a store holding one `--verify-mib` blob (and its
   image's config and manifest) against `swift download` of that blob's object (through
   the middleware, as every Swift client reads a DLO), written to /dev/null.

Each line gives the CPU seconds a GiB of each process involved (regtool or distribution,
Swift's proxy and object servers, the client), and the load average at the end: on a
busy machine the CPU, not the network, sets the pace.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from benchmarks.cpu import CpuUsage, load_average
from benchmarks.serve_throughput import wait_ready
from regtool.layout.v2 import SWIFT_ROOT, V2Layout
from regtool.oci import OCI_MANIFEST, Digest
from regtool.server.registry import Registry
from tests.services import free_port
from tests.services.distribution import start_distribution, swift_storage
from tests.services.swift import SwiftService, start_swift

SEGMENT = 20 * 1024 * 1024  # distribution's default chunk size
MIB = 1 << 20
REPO = "bench/blob"
GIB = 1 << 30


def store_image(service: SwiftService, container: str, mib: int) -> Digest:
    """One image whose single layer is a `mib` MiB DLO blob; returns the layer's digest."""
    service.create_container(container)
    driver = service.driver(container, segment_size=SEGMENT)
    layout = V2Layout(driver, SWIFT_ROOT)
    block = os.urandom(MIB)
    # distinct MiBs (a counter in each), so no segment repeats another
    chunks = [(i.to_bytes(8, "big") + block[8:]) for i in range(mib)]
    digest = Digest.of(b"".join(chunks))
    with driver.writer(layout.blob_data(digest)) as w:
        for chunk in chunks:
            w.write(chunk)
        w.commit()
    driver.put(layout.layer_link(REPO, digest), str(digest).encode())
    config = b'{"architecture":"amd64","os":"linux"}'
    config_digest = Digest.of(config)
    driver.put(layout.blob_data(config_digest), config)
    driver.put(layout.layer_link(REPO, config_digest), str(config_digest).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": len(config),
            "digest": str(config_digest),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "size": mib * MIB,
                "digest": str(digest),
            }
        ],
    }
    Registry(layout).put_manifest(REPO, "1", json.dumps(manifest).encode(), OCI_MANIFEST)
    driver.close()
    return digest


def swift_env(service: SwiftService) -> dict[str, str]:
    return {
        **os.environ,
        "ST_AUTH": service.auth_url,
        "ST_USER": service.user,
        "ST_KEY": service.key,
    }


def start_serve(service: SwiftService, container: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "regtool"),
            "serve",
            f"swift://{container}",
            "--addr",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        env=swift_env(service),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url


def pull(url: str, total: int, digest: str) -> float:
    """Seconds to GET the blob `digest` of `total` bytes from the registry at `url`,
    checking its size and digest; `RuntimeError` if either differs."""
    where = urlparse(url)
    conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=600)
    hasher, size = hashlib.sha256(), 0
    view = memoryview(bytearray(MIB))
    try:
        start = time.perf_counter()
        conn.request("GET", f"/v2/{REPO}/blobs/{digest}")
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"GET from {url}: {response.status} {response.reason}")
        while n := response.readinto(view):
            hasher.update(view[:n])
            size += n
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    if size != total or f"sha256:{hasher.hexdigest()}" != digest:
        raise RuntimeError(f"pull from {url} returned other content")
    return elapsed


def swift_pids(service: SwiftService) -> dict[str, int]:
    pids = service.pids()
    return {"swift proxy": pids["proxy"], "swift object": pids["object"]}


def cpu_line(seconds: dict[str, float], nbytes: int) -> str:
    """`regtool 1.8, swift proxy 2.9, ...` (CPU seconds a GiB) for the log."""
    per = GIB / nbytes
    return ", ".join(f"{name} {cpu * per:.2f}" for name, cpu in seconds.items())


def pulls(
    name: str, url: str, pid: int, service: SwiftService, digest: Digest, total: int, rounds: int
) -> float:
    """The best of `rounds` pulls, each printed with its CPU use."""
    times = []
    for _ in range(rounds):
        usage, client = CpuUsage({name: pid, **swift_pids(service)}), time.process_time()
        times.append(pull(url, total, str(digest)))
        cpu = {**usage.seconds(), "client": time.process_time() - client}
        print(
            f"  {name}: {times[-1]:6.2f} s, CPU s/GiB: {cpu_line(cpu, total)}; "
            f"load {load_average()}",
            flush=True,
        )
    return min(times)


def timed(argv: list[str], env: dict[str, str], service: SwiftService, nbytes: int) -> float:
    """Seconds `argv` takes; prints its CPU use and that of Swift's servers."""
    usage, children = CpuUsage(swift_pids(service)), resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    cpu = {f"{Path(argv[0]).name} {argv[1]}": own, **usage.seconds()}
    print(f"  {elapsed:6.2f} s, CPU s/GiB: {cpu_line(cpu, nbytes)}; load {load_average()}")
    return elapsed


def blob_get(service: SwiftService, tmp: Path, mib: int, rounds: int) -> None:
    container = "bench_get"
    digest = store_image(service, container, mib)
    total = mib * MIB
    segments = -(-total // SEGMENT)
    print(f"blob GET of {mib} MiB ({segments} segments of {SEGMENT // MIB} MiB):", flush=True)
    proc, url = start_serve(service, container)
    try:
        best = pulls("regtool serve", url, proc.pid, service, digest, total, rounds)
    finally:
        proc.terminate()
        proc.wait(10)
    storage = swift_storage(service, container, create=False)
    reg = start_distribution(tmp / "distribution", storage)
    try:
        assert reg.process is not None
        their_best = pulls("distribution", reg.url, reg.process.pid, service, digest, total, rounds)
    finally:
        reg.stop()
    print(f"  best of {rounds}: regtool serve {best:.2f} s ({mib / best:.1f} MiB/s),")
    print(f"  distribution {their_best:.2f} s ({mib / their_best:.1f} MiB/s)")
    print(f"  ratio distribution / regtool: {their_best / best:.1f}x (target >= 8x)")


def verify(service: SwiftService, tmp: Path, mib: int) -> None:
    container = "bench_verify"
    digest = store_image(service, container, mib)
    bindir = Path(sys.executable).parent
    env = swift_env(service)
    total = mib * MIB
    name = f"{SWIFT_ROOT}/blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}/data"
    print(f"verify of one {mib} MiB blob ({-(-total // SEGMENT)} segments):", flush=True)
    print("  swift download:")
    download = timed(
        [str(bindir / "swift"), "download", container, name, "-o", os.devnull], env, service, total
    )
    print("  regtool verify --all:")
    ours = timed(
        [str(bindir / "regtool"), "verify", "--all", "--json", "-l", f"swift://{container}"],
        env,
        service,
        total,
    )
    print(f"  swift download {download:.2f} s ({mib / download:.1f} MiB/s),")
    print(f"  regtool verify --all {ours:.2f} s ({mib / ours:.1f} MiB/s)")
    print(f"  ratio swift download / regtool: {download / ours:.1f}x (target >= 5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--get-mib", type=int, default=512)
    parser.add_argument("--verify-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--swift-workers", type=int, default=os.cpu_count() or 1, help="per Swift server"
    )
    args = parser.parse_args()
    print(
        f"Swift: {args.swift_workers} workers a server (proxy, object, ...) for both tools; "
        "DLO rate limit at Swift's defaults (10 segments, then 1 a second)"
    )
    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp:
        service = start_swift(Path(tmp) / "swift", workers=args.swift_workers)
        try:
            if args.get_mib:
                blob_get(service, Path(tmp), args.get_mib, args.rounds)
            if args.verify_mib:
                verify(service, Path(tmp), args.verify_mib)
        finally:
            service.stop()


if __name__ == "__main__":
    main()
