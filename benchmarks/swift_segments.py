"""Large blobs on Swift, read by their segments: a blob GET from `regtool serve` against
distribution on the same Swift, and `regtool verify` of one blob against `swift download`
of it, in the same run.

    .venv/bin/python -m benchmarks.swift_segments [--get-mib 512] [--verify-mib 1024]

Starts a real Swift on loopback with the DLO middleware's default rate limit (after the
10th segment of a GET, one segment a second) and stores blobs as distribution's Swift
driver does: DLOs of 20 MiB segments (512 MiB: 26 segments).

1. Blob GET: `regtool serve swift://<c>` and distribution (Debian's `docker-registry`,
   its Swift driver on the same container) each serve the blob; one client streams it and
   checks its digest, `--rounds` times; the best round counts.
2. Verify: `regtool verify --all` of a store holding one `--verify-mib` blob (and its
   image's config and manifest) against `swift download` of that blob's object (through
   the middleware, as every Swift client reads a DLO), written to /dev/null.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.serve_throughput import pull, wait_ready
from regtool.layout.v2 import SWIFT_ROOT, V2Layout
from regtool.oci import OCI_MANIFEST, Digest
from regtool.server.registry import Registry
from tests.services import free_port
from tests.services.distribution import start_distribution, swift_storage
from tests.services.swift import SwiftService, start_swift

SEGMENT = 20 * 1024 * 1024  # distribution's default chunk size
MIB = 1 << 20
REPO = "bench/blob"  # serve_throughput.pull reads from this repository


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


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def blob_get(service: SwiftService, tmp: Path, mib: int, rounds: int) -> None:
    container = "bench_get"
    digest = store_image(service, container, mib)
    total = mib * MIB
    segments = -(-total // SEGMENT)
    ours: list[float] = []
    theirs: list[float] = []
    proc, url = start_serve(service, container)
    try:
        for _ in range(rounds):
            ours.append(pull(url, total, str(digest)))
    finally:
        proc.terminate()
        proc.wait(10)
    storage = swift_storage(service, container, create=False)
    reg = start_distribution(tmp / "distribution", storage)
    try:
        for _ in range(rounds):
            theirs.append(pull(reg.url, total, str(digest)))
    finally:
        reg.stop()
    best, their_best = min(ours), min(theirs)
    print(f"blob GET of {mib} MiB ({segments} segments of {SEGMENT // MIB} MiB), best of {rounds}:")
    print(f"  regtool serve:  {best:6.2f} s  {mib / best:7.1f} MiB/s")
    print(f"  distribution:   {their_best:6.2f} s  {mib / their_best:7.1f} MiB/s")
    print(f"  ratio distribution / regtool: {their_best / best:.1f}x (target >= 8x)")


def verify(service: SwiftService, tmp: Path, mib: int) -> None:
    container = "bench_verify"
    digest = store_image(service, container, mib)
    bindir = Path(sys.executable).parent
    env = swift_env(service)
    name = f"{SWIFT_ROOT}/blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}/data"
    download = timed([str(bindir / "swift"), "download", container, name, "-o", os.devnull], env)
    ours = timed(
        [str(bindir / "regtool"), "verify", "--all", "--json", "-l", f"swift://{container}"], env
    )
    print(f"verify of one {mib} MiB blob ({-(-mib * MIB // SEGMENT)} segments):")
    print(f"  swift download:        {download:6.2f} s  {mib / download:7.1f} MiB/s")
    print(f"  regtool verify --all:  {ours:6.2f} s  {mib / ours:7.1f} MiB/s")
    print(f"  ratio swift download / regtool: {download / ours:.1f}x (target >= 5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--get-mib", type=int, default=512)
    parser.add_argument("--verify-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp:
        service = start_swift(Path(tmp) / "swift")
        try:
            if args.get_mib:
                blob_get(service, Path(tmp), args.get_mib, args.rounds)
            if args.verify_mib:
                verify(service, Path(tmp), args.verify_mib)
        finally:
            service.stop()


if __name__ == "__main__":
    main()
