"""Benchmark: `regtool verify --all` on Swift vs downloading the same objects with
`swift download`, at the same concurrency, in the same run.

Starts a real Swift on loopback (as the tests do) and writes a registry in distribution's
Swift naming: one image whose config and layers are DLOs with 20 MiB segments, as
distribution's Swift driver stores uploaded blobs. Then times:

1. `swift download --object-threads JOBS --prefix <blobs/> -D <tmp>` (python-swiftclient's
   CLI; DLOs are fetched whole through their manifests, as regtool reads them);
2. `regtool verify --all --jobs JOBS swift://<container>` (re-hashes every blob).

Usage: .venv/bin/python -m benchmarks.verify_swift [--mib 512] [--blob-mib 64] [--jobs 8]
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

from regtool.layout.v2 import SWIFT_ROOT, V2Layout
from regtool.oci import OCI_MANIFEST, Digest
from regtool.server.registry import Registry
from tests.services.swift import start_swift

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


def run(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512, help="blob bytes in MiB")
    parser.add_argument("--blob-mib", type=int, default=64, help="size of each blob")
    parser.add_argument("--jobs", type=int, default=8, help="concurrency for both tools")
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp:
        service = start_swift(Path(tmp) / "swift")
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
                f"({SEGMENT >> 20} MiB segments); --jobs {args.jobs} for both tools"
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
            )
            print(f"swift download:        {download:6.2f} s  {mib / download:7.1f} MiB/s")
            print(f"regtool verify --all:  {verify:6.2f} s  {mib / verify:7.1f} MiB/s")
            print(f"ratio regtool / swift download: {download / verify:.2f} (target >= 0.7)")
        finally:
            service.stop()


if __name__ == "__main__":
    main()
