"""Benchmark: `regtool gc --dry-run` vs distribution's `garbage-collect --dry-run` on Swift.

Starts a real Swift on loopback, fills a container as `benchmarks.ls_swift` does (REPOS
repositories x 3 tags, blobs as DLOs with segments, manifests and links plain objects),
then adds garbage: in every fourth repository one more image whose manifest was deleted
(its revision link gone, its blobs and `_layers` links left), as a manifest DELETE
through the API leaves it. In the same run it times distribution 2.8's
`docker-registry garbage-collect --dry-run` and `regtool gc --dry-run --min-age 0`, checks
that both name the same blobs, and prints both times, the ratio and regtool's requests.
Tags are pushed REPUSHES times each (histories of three, as distribution writes them).
`regtool gc` runs as an installed command (its bytecode compiled, `benchmarks.installed`)
cold (no manifest cache) and warm (the cache the cold run before it filled), in turns,
RUNS times each (median and range), against one run of distribution's.

Pushing 100 repositories one blob and link at a time takes about ten minutes here. With
`--pushed N` only N repositories are pushed; every other one is made by copying, inside
Swift (a COPY per object, no bytes through the client), all of `repositories/<source>/`
of pushed repository `n % N` to its own name. That is the layout distribution writes for
the same images pushed to another name (a cross-repository push: new links, the same
blobs), so the copies share the pushed repositories' blobs and manifests: REPOS
repositories of links over N repositories' worth of blobs. Garbage is added to copies too.

Swift's servers run `--swift-workers` worker processes each (default: one a core, Swift's
own default `workers = auto`, as `verify_swift` and `swift_segments` run it; the tests'
Swift runs none), the same for both tools. A cold run is bound by Swift's CPU (one HEAD
of each large blob's manifest, beside the walk); `--swift-workers 0` shows it on a proxy
held to one core.

Usage: .venv/bin/python -m benchmarks.gc_swift [--repos 100] [--pushed 10] [--repushes 3]
    [--runs 3] [--swift-workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from swiftclient import client as sc  # type: ignore[import-untyped]

from benchmarks.cpu import load_average
from benchmarks.installed import installed_env
from benchmarks.ls_swift import LAYER_TYPE, _blob, _drop, populate
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
from tests.services.swift import SwiftService, start_swift

ELIGIBLE = re.compile(r"blob eligible for deletion: (sha256:[0-9a-f]{64})")


def repository_name(n: int) -> str:
    return f"team{n % 10}/app{n:03d}"  # as `ls_swift.populate` names them


def replicate(service: SwiftService, container: str, repos: int, pushed: int) -> int:
    """Repositories `pushed` .. `repos - 1`, each a server-side copy of the objects of
    pushed repository `n % pushed` (see the module's doc); returns the objects copied."""
    url, token = sc.get_auth(service.auth_url, service.user, service.key)
    root = f"{SWIFT_ROOT}/repositories"
    local = threading.local()

    def copy(pair: tuple[str, str]) -> None:
        if not hasattr(local, "conn"):
            local.conn = sc.http_connection(url)
        source, target = pair
        sc.put_object(
            url,
            token,
            container,
            target,
            contents=None,
            content_length=0,
            headers={"X-Copy-From": quote(f"/{container}/{source}")},
            http_conn=local.conn,
        )

    copies = []
    for n in range(pushed, repos):
        source = f"{root}/{repository_name(n % pushed)}/"
        _, names = sc.get_container(
            url, token, container, prefix=source, full_listing=True, http_conn=None
        )
        target = f"{root}/{repository_name(n)}/"
        copies += [(o["name"], target + o["name"][len(source) :]) for o in names]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(copy, copies))
    return len(copies)


def timed(
    argv: list[str], env: dict[str, str], runs: int, before: Callable[[], None] | None = None
) -> list[float]:
    """Wall seconds of `runs` runs of `argv` (`before` called ahead of each)."""
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def spread(times: list[float]) -> str:
    """`1.23 s (1.10-1.40)`: the median and range of `times`."""
    return f"{statistics.median(times):7.2f} s ({min(times):.2f}-{max(times):.2f})"


def add_garbage(driver: Driver, repos: int) -> set[str]:
    """An image per fourth repository whose manifest was deleted; returns its blobs."""
    layout = V2Layout(driver, SWIFT_ROOT)
    orphans: set[str] = set()
    for n in range(0, repos, 4):
        name = repository_name(n)
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
    parser.add_argument(
        "--pushed", type=int, default=None, help="repositories pushed; the rest copied"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--swift-workers", type=int, default=os.cpu_count() or 1, help="per Swift server"
    )
    args = parser.parse_args()
    print(f"Swift: {args.swift_workers} workers a server (proxy, object, ...) for both tools")
    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp:
        service = start_swift(Path(tmp), workers=args.swift_workers)
        try:
            container = "docker_registry"
            storage = swift_storage(service, container)
            driver = service.driver(container)
            t0 = time.perf_counter()
            pushed = min(args.pushed or args.repos, args.repos)
            populate(driver, pushed, args.repushes)
            copied = replicate(service, container, args.repos, pushed)
            orphans = add_garbage(driver, args.repos)
            objects = sum(1 for _ in driver.walk(""))
            driver.close()
            print(
                f"store: {args.repos} repositories x 3 tags ({pushed} pushed, the rest "
                f"{copied} objects copied in Swift), {objects} objects, "
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
            theirs_load = load_average()
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
            command_env = installed_env({**os.environ, **env})
            colds: list[float] = []
            warms: list[float] = []
            for _ in range(args.runs):  # in turns, so that a change of load hits both
                colds += timed(gc_command, command_env, 1, lambda: _drop(cache))
                warms += timed(gc_command, command_env, 1)  # the cache the cold run filled
            cold_time, warm_time = statistics.median(colds), statistics.median(warms)

            assert theirs == orphans, (len(theirs), len(orphans))
            assert ours == theirs, (len(ours), len(theirs))
            print(
                f"distribution garbage-collect --dry-run: {theirs_time:7.2f} s "
                f"(load at its end {theirs_load})"
            )
            print(f"regtool gc --dry-run (in-process, cold): {ours_time:7.2f} s")
            print(f"regtool gc --dry-run (command, cold):    {spread(colds)}")
            print(f"regtool gc --dry-run (command, warm):    {spread(warms)}")
            print(f"load at the end: {load_average()}")
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
