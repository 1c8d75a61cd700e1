"""Benchmark: `regtool ls --json` on a distribution registry in Swift vs a bare `swift list`.

Starts a real Swift on loopback (as the tests do), fills a container with a registry in
distribution's Swift naming (`files/docker/registry/v2/...`) as distribution's Swift
driver writes it: uploaded blobs (configs, layers) are DLOs with their segments under
`segments/`, manifests and links plain objects. REPOS repositories x 3 tags, each image
a manifest, a config and 6 layers, one base layer shared by all. Then, in the same run:

- `swift list <container>` (python-swiftclient's CLI): wall time, median of RUNS;
- `regtool ls --json swift://<container>`: wall time, median of RUNS;
- the HTTP requests regtool made, counted by its Swift driver, against the target of
  one listing per 10,000 names + one GET per tag link + one GET per distinct manifest.

Usage: .venv/bin/python -m benchmarks.ls_swift [--repos 100] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from regtool.inspect.listing import list_registry
from regtool.layout.detect import detect_layout
from regtool.layout.v2 import SWIFT_ROOT, V2Layout
from regtool.location import parse_location
from regtool.oci import OCI_MANIFEST, Digest
from regtool.server.registry import Registry
from regtool.storage.base import Driver
from tests.services.swift import start_swift

TAGS = ("1.0", "1.1", "latest")
LAYERS = 6
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def _blob(driver: Driver, layout: V2Layout, data: bytes) -> tuple[Digest, int]:
    digest = Digest.of(data)
    w = driver.writer(layout.blob_data(digest))  # a DLO, as distribution writes blobs
    w.write(data)
    w.commit()
    return digest, len(data)


def populate(driver: Driver, repos: int) -> None:
    layout = V2Layout(driver, SWIFT_ROOT)
    registry = Registry(layout)
    base = _blob(driver, layout, os.urandom(4096))

    def repository(n: int) -> None:
        name = f"team{n % 10}/app{n:03d}"
        for tag in TAGS:
            layers = [base] + [_blob(driver, layout, os.urandom(2048)) for _ in range(LAYERS - 1)]
            config = _blob(
                driver,
                layout,
                json.dumps(
                    {"architecture": "amd64", "os": "linux", "n": os.urandom(8).hex()}
                ).encode(),
            )
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": CONFIG_TYPE,
                        "digest": str(config[0]),
                        "size": config[1],
                    },
                    "layers": [
                        {"mediaType": LAYER_TYPE, "digest": str(d), "size": s} for d, s in layers
                    ],
                }
            ).encode()
            for d, _ in [config, *layers]:
                registry.link_blob(name, d)
            # A plain object, links in distribution's order: as a push stores it.
            registry.put_manifest(name, tag, manifest, OCI_MANIFEST)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(repository, range(repos)))


def timed(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, bytes]:
    times, out = [], b""
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run(argv, env=env, check=True, capture_output=True).stdout
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    bindir = Path(sys.executable).parent

    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp:
        service = start_swift(Path(tmp))
        try:
            container = "docker_registry"
            driver = service.driver(container)
            t0 = time.perf_counter()
            populate(driver, args.repos)
            objects = sum(1 for _ in driver.walk(""))
            print(
                f"store: {args.repos} repositories x {len(TAGS)} tags, {objects} objects "
                f"(built in {time.perf_counter() - t0:.1f} s)"
            )
            driver.close()

            env = {
                **os.environ,
                "ST_AUTH": service.auth_url,
                "ST_USER": service.user,
                "ST_KEY": service.key,
            }
            swift_time, names = timed([str(bindir / "swift"), "list", container], env, args.runs)
            assert len(names.splitlines()) == objects
            regtool_time, out = timed(
                [str(bindir / "regtool"), "ls", "--json", f"swift://{container}"], env, args.runs
            )
            doc = json.loads(out)
            assert doc["totals"]["tags"] == args.repos * len(TAGS), doc["totals"]

            # Requests, counted in-process by the driver.
            location = parse_location(f"swift://{container}", env=env)
            counted = location.open()
            start = time.perf_counter()
            listing = list_registry(detect_layout(counted), location.redacted())
            inproc = time.perf_counter() - start
            requests = counted.request_count()
            counted.close()
            tags = listing.tag_count
            manifests = len({t.digest for r in listing.repositories for t in r.tags})
            listing_pages = 1 + objects // 10_000
            target = listing_pages + tags + manifests
            print(f"swift list:          {swift_time:6.3f} s  (median of {args.runs})")
            print(
                f"regtool ls --json:   {regtool_time:6.3f} s  (median of {args.runs}); "
                f"in-process {inproc:.3f} s"
            )
            print(f"ratio regtool/swift: {regtool_time / swift_time:6.2f}x  (target <= 3x)")
            print(
                f"requests: {requests} (auth and layout detection included); budget "
                f"{target} = {listing_pages} listing page(s) + {tags} tag link GETs + "
                f"{manifests} manifest GETs (links whose digest the listing tells are not read)"
            )
        finally:
            service.stop()


if __name__ == "__main__":
    main()
