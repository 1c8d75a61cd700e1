"""Benchmark: `regtool gc --dry-run` vs distribution's `garbage-collect --dry-run` on Swift.

Starts a real Swift on loopback, fills a container as `benchmarks.ls_swift` does (REPOS
repositories x 3 tags, blobs as DLOs with segments, manifests and links plain objects),
then adds garbage: in every fourth repository one more image whose manifest was deleted
(its revision link gone, its blobs and `_layers` links left), as a manifest DELETE
through the API leaves it. In the same run it times distribution 2.8's
`docker-registry garbage-collect --dry-run` and `regtool gc --dry-run --min-age 0`, checks
that both name the same blobs, and prints both times, the ratio and regtool's requests.
Tags are pushed REPUSHES times each (histories of three, as distribution writes them).
`regtool gc` runs as a command cold (no manifest cache) and warm (the cache a run before
filled), RUNS times each (median), against one run of distribution's.

Usage: .venv/bin/python -m benchmarks.gc_swift [--repos 100] [--repushes 3] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from benchmarks.ls_swift import LAYER_TYPE, _blob, _drop, populate, timed
from regtool.gc import GcOptions, collect
from regtool.layout.detect import detect_layout
from regtool.layout.v2 import SWIFT_ROOT, V2Layout
from regtool.location import parse_location
from regtool.oci import OCI_MANIFEST, Digest
from regtool.storage.base import Driver
from tests.services import free_port
from tests.services.distribution import (
    REGISTRY_BIN,
    service_env,
    swift_storage,
    write_config,
)
from tests.services.swift import start_swift

ELIGIBLE = re.compile(r"blob eligible for deletion: (sha256:[0-9a-f]{64})")


def add_garbage(driver: Driver, repos: int) -> set[str]:
    """An image per fourth repository whose manifest was deleted; returns its blobs."""
    layout = V2Layout(driver, SWIFT_ROOT)
    orphans: set[str] = set()
    for n in range(0, repos, 4):
        name = f"team{n % 10}/app{n:03d}"
        blobs = [_blob(driver, layout, os.urandom(2048)) for _ in range(3)]
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": LAYER_TYPE, "digest": str(blobs[0][0]), "size": blobs[0][1]},
            "layers": [
                {"mediaType": LAYER_TYPE, "digest": str(d), "size": s} for d, s in blobs[1:]
            ],
        }
        manifest = json.dumps(doc).encode()
        digest = Digest.of(manifest)
        driver.put(layout.blob_data(digest), manifest)
        for d, _ in blobs:
            driver.put(layout.layer_link(name, d), str(d).encode())
        orphans |= {str(digest), *(str(d) for d, _ in blobs)}
    return orphans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--repushes", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp:
        service = start_swift(Path(tmp))
        try:
            container = "docker_registry"
            storage = swift_storage(service, container)
            driver = service.driver(container)
            t0 = time.perf_counter()
            populate(driver, args.repos, args.repushes)
            orphans = add_garbage(driver, args.repos)
            objects = sum(1 for _ in driver.walk(""))
            driver.close()
            print(
                f"store: {args.repos} repositories x 3 tags, {objects} objects, "
                f"{len(orphans)} orphaned blobs (built in {time.perf_counter() - t0:.1f} s)"
            )

            config = Path(tmp) / "config.yml"
            write_config(config, storage, port=free_port())
            start = time.perf_counter()
            done = subprocess.run(
                [REGISTRY_BIN, "garbage-collect", "--dry-run", str(config)],
                env=service_env(),
                capture_output=True,
                text=True,
                check=True,
            )
            theirs_time = time.perf_counter() - start
            theirs = set(ELIGIBLE.findall(done.stdout))

            cache = Path(tmp) / "cache"
            os.environ["XDG_CACHE_HOME"] = str(cache)
            env = {"ST_AUTH": service.auth_url, "ST_USER": service.user, "ST_KEY": service.key}
            location = parse_location(f"swift://{container}", env=env)
            counted = location.open()
            start = time.perf_counter()
            result = collect(  # no cache: the cold in-process figure and the requests
                detect_layout(counted),
                location.redacted(),
                GcOptions(dry_run=True, min_age=timedelta(0)),
            )
            ours_time = time.perf_counter() - start
            requests = counted.request_count()
            counted.close()
            ours = {i.name for i in result.items if i.kind in ("blob", "manifest")}

            bindir = Path(sys.executable).parent
            gc_command = [str(bindir / "regtool"), "gc", "--dry-run", "--min-age", "0"]
            gc_command += ["--json", "-l", f"swift://{container}"]
            command_env = {**os.environ, **env}
            cold_time, _ = timed(gc_command, command_env, args.runs, lambda: _drop(cache))
            timed(gc_command, command_env, 1)  # fills the cache
            warm_time, _ = timed(gc_command, command_env, args.runs)

            assert theirs == orphans, (len(theirs), len(orphans))
            assert ours == theirs, (len(ours), len(theirs))
            print(f"distribution garbage-collect --dry-run: {theirs_time:7.2f} s")
            print(f"regtool gc --dry-run (in-process, cold): {ours_time:7.2f} s")
            print(f"regtool gc --dry-run (command, cold):    {cold_time:7.2f} s")
            print(f"regtool gc --dry-run (command, warm):    {warm_time:7.2f} s")
            print(
                f"ratio: {theirs_time / cold_time:.1f}x cold (target >= 40x), "
                f"{theirs_time / warm_time:.1f}x warm (target >= 100x), "
                f"{theirs_time / ours_time:.1f}x in-process cold"
            )
            print(
                f"both name the same {len(ours)} blobs; regtool made {requests} requests "
                f"(phases: {', '.join(f'{k} {v:.2f} s' for k, v in result.phases.items())})"
            )
        finally:
            service.stop()


if __name__ == "__main__":
    main()
