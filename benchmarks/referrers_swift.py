"""Benchmark: the referrers API on a repository with 1,000 revisions on Swift, warm
manifest cache, against one listing request of the same revisions.

Starts a real Swift on loopback, pushes (through `Registry`, as `regtool serve` stores a
push) an image and REFERRERS artifacts whose `subject` is that image, by digest. Then, in
the same run, median of RUNS each:

- one listing request of the repository's revision links (`swift list --prefix` of it
  makes the same request; timed in-process so that no process start-up is counted);
- `Registry.referrers` with no cache (every link confirmed by the listing's MD5, every
  manifest read) and warm (the cache a run before filled: listings only);
and prints the times, the ratio warm / listing (target <= 2x) and the requests made.

Usage: .venv/bin/python -m benchmarks.referrers_swift [--referrers 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from regtool.facts import open_cache
from regtool.layout.manifests import store_identity
from regtool.layout.v2 import SWIFT_ROOT, V2Layout
from regtool.oci import OCI_MANIFEST, Digest
from regtool.server.registry import Registry
from tests.services.swift import start_swift

NAME = "app"
EMPTY = "application/vnd.oci.empty.v1+json"


def populate(registry: Registry, referrers: int) -> Digest:
    layout = registry.layout
    config = Digest.of(b"{}")
    layout.driver.put(layout.blob_data(config), b"{}")
    registry.link_blob(NAME, config)
    image = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": EMPTY, "digest": str(config), "size": 2},
        "layers": [],
    }
    subject = registry.put_manifest(NAME, "1", json.dumps(image).encode(), OCI_MANIFEST).digest

    def one(n: int) -> None:
        doc = {
            **image,
            "artifactType": "application/vnd.example.sig",
            "subject": {"mediaType": OCI_MANIFEST, "digest": str(subject), "size": 1},
            "annotations": {"n": str(n), "pad": os.urandom(8).hex()},
        }
        data = json.dumps(doc).encode()
        registry.put_manifest(NAME, Digest.of(data), data, OCI_MANIFEST)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(referrers)))
    return subject


def median(call: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrers", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp:
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")
        service = start_swift(Path(tmp))
        try:
            driver = service.driver("docker_registry")
            layout = V2Layout(driver, SWIFT_ROOT)
            t0 = time.perf_counter()
            pusher = Registry(layout, facts=open_cache("", enabled=False))
            subject = populate(pusher, args.referrers)
            print(
                f"store: {args.referrers} referrers of one image, built in "
                f"{time.perf_counter() - t0:.1f} s"
            )
            revisions = layout.revisions_dir(NAME)
            listing_time, entries = median(lambda: list(driver.walk(revisions)), args.runs)
            assert len(entries) == args.referrers + 1

            cold = Registry(layout, facts=open_cache("", enabled=False))
            before = driver.request_count() or 0
            cold_time, cold_doc = median(lambda: cold.referrers(NAME, subject, None), args.runs)
            cold_requests = ((driver.request_count() or 0) - before) // args.runs
            assert len(cold_doc["manifests"]) == args.referrers

            warm = Registry(layout, facts=open_cache(store_identity(layout)))
            warm.referrers(NAME, subject, None)  # fills the cache
            before = driver.request_count() or 0
            warm_time, warm_doc = median(lambda: warm.referrers(NAME, subject, None), args.runs)
            warm_requests = ((driver.request_count() or 0) - before) // args.runs
            assert warm_doc == cold_doc
            print(f"one listing request of {len(entries)} revision links: {listing_time:.3f} s")
            print(f"referrers, no cache: {cold_time:.3f} s ({cold_requests} requests)")
            print(f"referrers, warm:     {warm_time:.3f} s ({warm_requests} requests)")
            print(f"ratio warm / listing: {warm_time / listing_time:.2f}x (target <= 2x)")
            driver.close()
        finally:
            service.stop()


if __name__ == "__main__":
    main()
