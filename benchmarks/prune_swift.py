"""Benchmark: `regtool prune --keep-last 5` vs deleting the same tags through
distribution's API, on Swift.

Starts a real Swift on loopback and fills two containers alike, in distribution's Swift
naming: REPOS repositories x TAGS tags, each tag its own image (a manifest, a config and a
layer shared by the repository), tags pushed one after another in each repository, so
that both stores hold the same objects with the same order of push times. Then, in the
same run:

- distribution 2.8 serving container B: what crane/regctl scripts do, 16 at a time: for
  each tag to delete (all but the 5 most recently pushed of each repository) a HEAD for
  its digest, then `DELETE /v2/<name>/manifests/<digest>`;
- `regtool prune --keep-last 5 -l swift://A`, as a command, and its requests counted;
- both containers listed afterwards: the object names must be identical.

Usage: .venv/bin/python -m benchmarks.prune_swift [--repos 50] [--tags 60]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from regtool.layout.v2 import SWIFT_ROOT, V2Layout
from regtool.layout.v2_write import write_link
from regtool.location import parse_location
from regtool.oci import OCI_MANIFEST, Digest
from regtool.retention import Policy, PolicySelector, RetentionOptions, make_rule, run_retention
from regtool.storage.base import Driver
from tests.services.distribution import start_distribution, swift_storage
from tests.services.swift import start_swift

KEEP = 5
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def repo_name(n: int) -> str:
    return f"team{n % 5}/app{n:03d}"


def tag_name(n: int) -> str:
    return f"build-{n:03d}"


def populate_repository(driver: Driver, n: int, tags: int) -> None:
    """One repository, its tags pushed in order, as distribution stores a push: blobs,
    `_layers` links, the manifest blob, its revision link, the tag's index link, then its
    current link. Content is seeded by `n`: both containers get the same bytes."""
    layout = V2Layout(driver, SWIFT_ROOT)
    rng = random.Random(n)
    name = repo_name(n)

    def blob(data: bytes) -> tuple[Digest, int]:
        digest = Digest.of(data)
        driver.put(layout.blob_data(digest), data)
        write_link(layout, layout.layer_link(name, digest), digest)
        return digest, len(data)

    layer = blob(rng.randbytes(2048))
    for t in range(tags):
        config = blob(json.dumps({"os": "linux", "architecture": "amd64", "n": t}).encode())
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": CONFIG_TYPE, "digest": str(config[0]), "size": config[1]},
                "layers": [{"mediaType": LAYER_TYPE, "digest": str(layer[0]), "size": layer[1]}],
            }
        ).encode()
        digest = Digest.of(manifest)
        driver.put(layout.blob_data(digest), manifest)
        write_link(layout, layout.revision_link(name, digest), digest)
        write_link(layout, layout.tag_index_link(name, tag_name(t), digest), digest)
        write_link(layout, layout.tag_current_link(name, tag_name(t)), digest)


def api_delete(host: str, repos: int, tags: int, jobs: int = 16) -> int:
    """Delete every tag but the last KEEP of each repository through the API: HEAD for the
    digest, then DELETE of the manifest, `jobs` at a time. Returns requests made."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    accept = f"{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"

    def one(job: tuple[str, str]) -> None:
        name, tag = job
        head = urllib.request.Request(
            f"http://{host}/v2/{name}/manifests/{tag}", method="HEAD", headers={"Accept": accept}
        )
        with opener.open(head) as r:
            digest = r.headers["Docker-Content-Digest"]
        delete = urllib.request.Request(
            f"http://{host}/v2/{name}/manifests/{digest}", method="DELETE"
        )
        with opener.open(delete) as r:
            assert r.status == 202, r.status

    work = [(repo_name(n), tag_name(t)) for n in range(repos) for t in range(tags - KEEP)]
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, work))
    return 2 * len(work)


def names(driver: Driver) -> set[str]:
    return {e.path for e in driver.walk("")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=50)
    parser.add_argument("--tags", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp:
        (Path(tmp) / "swift").mkdir()
        service = start_swift(Path(tmp) / "swift")
        registry = None
        try:
            ours, theirs = "prune_regtool", "prune_distribution"
            storage = swift_storage(service, theirs)
            service.create_container(ours)
            t0 = time.perf_counter()
            drivers = {c: service.driver(c) for c in (ours, theirs)}
            with ThreadPoolExecutor(16) as pool:
                list(
                    pool.map(
                        lambda job: populate_repository(drivers[job[0]], job[1], args.tags),
                        [(c, n) for n in range(args.repos) for c in (ours, theirs)],
                    )
                )
            before = names(drivers[ours])
            assert before == names(drivers[theirs])
            print(
                f"store: {args.repos} repositories x {args.tags} tags, {len(before)} objects "
                f"per container (built in {time.perf_counter() - t0:.1f} s)"
            )

            registry = start_distribution(Path(tmp) / "distribution", storage, log_level="warn")
            start = time.perf_counter()
            api_requests = api_delete(registry.host, args.repos, args.tags)
            theirs_time = time.perf_counter() - start

            env = {"ST_AUTH": service.auth_url, "ST_USER": service.user, "ST_KEY": service.key}
            bindir = Path(sys.executable).parent
            start = time.perf_counter()
            done = subprocess.run(
                [
                    str(bindir / "regtool"),
                    "prune",
                    "--keep-last",
                    str(KEEP),
                    "--json",
                    "-l",
                    f"swift://{ours}",
                ],
                env={**os.environ, **env},
                capture_output=True,
                check=True,
            )
            ours_time = time.perf_counter() - start
            doc = json.loads(done.stdout)

            after_ours, after_theirs = names(drivers[ours]), names(drivers[theirs])
            assert after_ours == after_theirs, (
                sorted(after_ours - after_theirs)[:5],
                sorted(after_theirs - after_ours)[:5],
            )
            deleted = doc["totals"]["tags_deleted"]
            assert deleted == args.repos * (args.tags - KEEP), deleted

            # The same prune once more, in-process, on a fresh copy of the store: requests.
            location = parse_location(f"swift://{ours}", env=env)
            for n in range(args.repos):
                populate_repository(drivers[ours], n, args.tags)
            counted = location.open()
            policy = Policy((make_rule("bench", keep_last=KEEP),))
            result = run_retention(
                V2Layout(counted, SWIFT_ROOT), "bench", PolicySelector(policy), RetentionOptions()
            )
            requests = counted.request_count()
            counted.close()

            print(
                f"distribution API (HEAD + DELETE per manifest, 16 at a time): "
                f"{theirs_time:7.2f} s, {api_requests} API requests"
            )
            print(f"regtool prune --keep-last {KEEP} (as a command):            {ours_time:7.2f} s")
            print(f"ratio: {theirs_time / ours_time:.1f}x (target >= 10x)")
            print(
                f"identical result on storage: {len(before) - len(after_ours)} objects deleted "
                f"from each container, {deleted} tags and {doc['totals']['manifests_deleted']} "
                f"manifests; regtool made {requests} Swift requests in-process "
                f"({', '.join(f'{k} {v:.2f} s' for k, v in result.phases.items())})"
            )
        finally:
            if registry is not None:
                registry.stop()
            service.stop()


if __name__ == "__main__":
    main()
