"""Benchmark: `regtool verify --all` on Swift vs downloading the same objects with
`swift download`, at the same concurrency, in the same run.

Starts a real Swift on loopback (as the tests do) and writes a registry in distribution's
Swift naming: one image whose config and layers are DLOs with 20 MiB segments, as
distribution's Swift driver stores uploaded blobs. Then times:

1. `swift download --object-threads JOBS --prefix <blobs/> -D <tmp>` (python-swiftclient's
   CLI; DLOs are fetched whole through their manifests, as regtool reads them);
2. `regtool verify --all --jobs JOBS swift://<container>` (re-hashes every blob).

Swift's servers run `--swift-workers` worker processes each (default: one a core, as a
production proxy does), the same for both tools. Each tool's line gives its CPU seconds a
GiB and those of Swift's proxy and object servers, and the load average.

Usage: .venv/bin/python -m benchmarks.verify_swift [--mib 512] [--blob-mib 64] [--jobs 8]
    [--swift-workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.cpu import CpuUsage, load_average
from regtool.layout.v2 import SWIFT_ROOT, V2Layout
from regtool.oci import OCI_MANIFEST, Digest
from regtool.server.registry import Registry
from tests.services.swift import SwiftService, start_swift

SEGMENT = 20 * 1024 * 1024  # distribution's default chunk size


def populate(service: object, container: str, total_mib: int, blob_mib: int) -> int:
    driver = service.driver(container, segment_size=SEGMENT)  # type: ignore[attr-defined]
    layout = V2Layout(driver, SWIFT_ROOT)
    layers = []
    for _ in range(max(1, total_mib // blob_mib)):
        data = os.urandom(blob_mib * 1024 * 1024)
        digest = Digest.of(data)
        with driver.writer(layout.blob_data(digest)) as w:
            for i in range(0, len(data), 1 << 20):
                w.write(data[i : i + (1 << 20)])
            w.commit()
        driver.put(layout.layer_link("bench/app", digest), str(digest).encode())
        layers.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "size": len(data),
                "digest": str(digest),
            }
        )
    config = b'{"architecture":"amd64","os":"linux"}'
    config_digest = Digest.of(config)
    driver.put(layout.blob_data(config_digest), config)
    driver.put(layout.layer_link("bench/app", config_digest), str(config_digest).encode())
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "size": len(config),
                "digest": str(config_digest),
            },
            "layers": layers,
        }
    ).encode()
    Registry(layout).put_manifest("bench/app", "1", manifest, OCI_MANIFEST)
    driver.close()
    return sum(int(layer["size"]) for layer in layers) + len(config) + len(manifest)


def run(argv: list[str], env: dict[str, str], service: SwiftService, nbytes: int) -> float:
    """Seconds `argv` takes; prints its CPU seconds a GiB and those of Swift's servers."""
    pids = service.pids()
    usage = CpuUsage({"swift proxy": pids["proxy"], "swift object": pids["object"]})
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    per = (1 << 30) / nbytes
    cpu = {f"{Path(argv[0]).name} {argv[1]}": own, **usage.seconds()}
    figures = ", ".join(f"{name} {seconds * per:.2f}" for name, seconds in cpu.items())
    print(f"  CPU s/GiB: {figures}; load {load_average()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512, help="blob bytes in MiB")
    parser.add_argument("--blob-mib", type=int, default=64, help="size of each blob")
    parser.add_argument("--jobs", type=int, default=8, help="concurrency for both tools")
    parser.add_argument(
        "--swift-workers", type=int, default=os.cpu_count() or 1, help="per Swift server"
    )
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp:
        service = start_swift(Path(tmp) / "swift", workers=args.swift_workers)
        try:
            container = "docker_registry"
            total = populate(service, container, args.mib, args.blob_mib)
            env = {
                **os.environ,
                "ST_AUTH": service.auth_url,
                "ST_USER": service.user,
                "ST_KEY": service.key,
            }
            mib = total / (1 << 20)
            print(
                f"store: {mib:.0f} MiB in {args.mib // args.blob_mib} DLO blobs "
                f"({SEGMENT >> 20} MiB segments); --jobs {args.jobs} for both tools; "
                f"Swift: {args.swift_workers} workers a server for both"
            )
            download = run(
                [
                    str(bindir / "swift"),
                    "download",
                    "--object-threads",
                    str(args.jobs),
                    "--prefix",
                    f"{SWIFT_ROOT}/blobs/",
                    "-D",
                    str(Path(tmp) / "download"),
                    container,
                ],
                env,
                service,
                total,
            )
            verify = run(
                [
                    str(bindir / "regtool"),
                    "verify",
                    "--all",
                    "--json",
                    "--jobs",
                    str(args.jobs),
                    "-l",
                    f"swift://{container}",
                ],
                env,
                service,
                total,
            )
            print(f"swift download:        {download:6.2f} s  {mib / download:7.1f} MiB/s")
            print(f"regtool verify --all:  {verify:6.2f} s  {mib / verify:7.1f} MiB/s")
            print(f"ratio regtool / swift download: {download / verify:.2f} (target >= 0.7)")
        finally:
            service.stop()


if __name__ == "__main__":
    main()
