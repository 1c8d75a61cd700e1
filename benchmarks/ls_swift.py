"""Benchmark: `regtool ls --json` on a distribution registry in Swift vs a bare `swift list`.

Starts a real Swift on loopback (as the tests do), fills a container with a registry in
distribution's Swift naming (`files/docker/registry/v2/...`) as distribution's Swift
driver writes it: uploaded blobs (configs, layers) are DLOs with their segments under
`segments/`, manifests and links plain objects. REPOS repositories x 3 tags, each image
a manifest, a config and 6 layers, one base layer shared by all; each tag pushed
REPUSHES times (a new config each time), so its `index/` history holds that many digests,
as distribution writes it. Then, in the same run:

- `swift list <container>` (python-swiftclient's CLI): wall time, median of RUNS;
- `swift list` + `swift download` of the tagged manifests, `--object-threads 16` (the
  concurrency of `regtool ls --jobs 16`): what a cold `ls` must at least do;
- `regtool ls --json swift://<container>` cold (no manifest cache: the file removed before
  each run) and warm (the cache filled): wall time, median of RUNS, and the ratios;
- the HTTP requests regtool made, counted by its Swift driver, cold and warm.

Usage: .venv/bin/python -m benchmarks.ls_swift [--repos 100] [--repushes 3] [--runs 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.installed import installed_env
from regtool.facts import open_cache
from regtool.inspect.listing import list_registry
from regtool.layout.detect import detect_layout
from regtool.layout.manifests import store_identity
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


def populate(driver: Driver, repos: int, repushes: int = 1) -> None:
    layout = V2Layout(driver, SWIFT_ROOT)
    registry = Registry(layout, facts=open_cache("", enabled=False))
    base = _blob(driver, layout, os.urandom(4096))

    def repository(n: int) -> None:
        name = f"team{n % 10}/app{n:03d}"
        for tag, _ in itertools.product(TAGS, range(repushes)):
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


def timed(
    argv: list[str], env: dict[str, str], runs: int, before: Callable[[], None] | None = None
) -> tuple[float, bytes]:
    times, out = [], b""
    for _ in range(runs):
        if before is not None:
            before()
        start = time.perf_counter()
        out = subprocess.run(argv, env=env, check=True, capture_output=True).stdout
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def counted_ls(container: str, env: dict[str, str], facts_on: bool) -> tuple[int, int]:
    """(requests, tags) of one in-process `ls`, with or without the (warm) cache."""
    location = parse_location(f"swift://{container}", env=env)
    counted = location.open()
    try:
        layout = detect_layout(counted)
        assert isinstance(layout, V2Layout)
        with open_cache(store_identity(layout), enabled=facts_on) as facts:
            before = counted.request_count() or 0
            listing = list_registry(layout, location.redacted(), facts=facts)
            return (counted.request_count() or 0) - before, listing.tag_count
    finally:
        counted.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--repushes", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    bindir = Path(sys.executable).parent

    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp:
        service = start_swift(Path(tmp))
        try:
            container = "docker_registry"
            driver = service.driver(container)
            t0 = time.perf_counter()
            populate(driver, args.repos, args.repushes)
            objects = sum(1 for _ in driver.walk(""))
            print(
                f"store: {args.repos} repositories x {len(TAGS)} tags, each pushed "
                f"{args.repushes} times, {objects} objects "
                f"(built in {time.perf_counter() - t0:.1f} s)"
            )
            driver.close()

            cache = Path(tmp) / "cache"
            os.environ["XDG_CACHE_HOME"] = str(cache)  # the in-process counts' cache too
            env = installed_env(  # regtool's bytecode compiled, as pip installs it
                {
                    **os.environ,
                    "ST_AUTH": service.auth_url,
                    "ST_USER": service.user,
                    "ST_KEY": service.key,
                    "XDG_CACHE_HOME": str(cache),
                }
            )
            swift = str(bindir / "swift")
            swift_time, names = timed([swift, "list", container], env, args.runs)
            assert len(names.splitlines()) == objects
            ls = [str(bindir / "regtool"), "ls", "--json", f"swift://{container}"]
            cold_time, out = timed(ls, env, args.runs, before=lambda: _drop(cache))
            doc = json.loads(out)
            assert doc["totals"]["tags"] == args.repos * len(TAGS), doc["totals"]
            warm_time, warm_out = timed(ls, env, args.runs)
            assert json.loads(warm_out) == doc

            digests = sorted({t["digest"] for r in doc["repositories"] for t in r["tags"]})
            layout = V2Layout(driver, SWIFT_ROOT)
            paths = [layout.blob_data(Digest.parse(d)) for d in digests]
            download = [swift, "download", container, "--object-threads", "16"]
            download += ["--output-dir", str(Path(tmp) / "download"), *paths]
            fetch_time, _ = timed(download, env, args.runs)
            swift_cold = swift_time + fetch_time

            cold_requests, _ = counted_ls(container, env, facts_on=False)
            warm_requests, tags = counted_ls(container, env, facts_on=True)
            print(f"swift list:                   {swift_time:6.3f} s  (median of {args.runs})")
            print(
                f"swift list + download of {len(paths)} manifests: {swift_cold:6.3f} s "
                f"(download {fetch_time:.3f} s, 16 threads)"
            )
            print(f"regtool ls --json cold:       {cold_time:6.3f} s  ({cold_requests} requests)")
            print(f"regtool ls --json warm:       {warm_time:6.3f} s  ({warm_requests} requests)")
            print(
                f"ratio warm / swift list:            {warm_time / swift_time:5.2f}x "
                "(target <= 1.3x)"
            )
            print(
                f"ratio cold / swift list + download: {cold_time / swift_cold:5.2f}x "
                "(target <= 1.2x)"
            )
            print(f"tags {tags}, listing pages of the container {1 + objects // 10_000}")
        finally:
            service.stop()


def _drop(cache: Path) -> None:
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
