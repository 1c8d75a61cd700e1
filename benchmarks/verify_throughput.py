"""How fast `regtool verify --all` re-hashes blobs, against plain hashing of the same files.

    .venv/bin/python -m benchmarks.verify_throughput [--gib 1] [--blob-mib 64] [--jobs 16]

Writes a local V2 store (random blobs laid out by the layout's path functions, one image
manifest referencing them, tagged), warms the page cache, then times:
  1. `regtool verify --all` in a subprocess (its peak RSS from getrusage);
  2. one process hashing the files with hashlib, `jobs` threads, 1 MiB reads;
  3. `sha256sum` over the files, `jobs` processes (xargs -P).
and prints each throughput and regtool's ratio to the faster baseline (target >= 0.8).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from regtool.layout.v2 import FILESYSTEM_ROOT, V2Layout
from regtool.oci import DOCKER_MANIFEST, Digest
from regtool.server.registry import Registry
from regtool.storage.local import LocalDriver

REPO = "bench/app"
MIB = 1 << 20


def write_store(root: Path, total: int, blob_size: int) -> list[Path]:
    """A store with `total` bytes of random layers; returns the blob files."""
    layout = V2Layout(LocalDriver(root), FILESYSTEM_ROOT)
    driver = layout.driver
    layers = []
    written = 0
    while written < total:
        size = min(blob_size, total - written)
        staging = layout.upload_data(REPO, uuid.uuid4().hex)
        hasher = hashlib.sha256()
        with driver.writer(staging) as writer:
            for offset in range(0, size, MIB):
                chunk = os.urandom(min(MIB, size - offset))
                hasher.update(chunk)
                writer.write(chunk)
            writer.commit()
        digest = Digest("sha256", hasher.hexdigest())
        driver.move(staging, layout.blob_data(digest))
        driver.put(layout.layer_link(REPO, digest), str(digest).encode())
        layers.append(
            {"mediaType": "application/octet-stream", "digest": str(digest), "size": size}
        )
        written += size
    config = b'{"architecture": "amd64", "os": "linux"}'
    config_digest = Digest.of(config)
    driver.put(layout.blob_data(config_digest), config)
    driver.put(layout.layer_link(REPO, config_digest), str(config_digest).encode())
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": str(config_digest),
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()
    Registry(layout).put_manifest(REPO, "1", manifest, DOCKER_MANIFEST)
    return [root / layout.blob_data(Digest.parse(layer["digest"])) for layer in layers]


def hashlib_threads(files: list[Path], jobs: int) -> None:
    def one(path: Path) -> str:
        h = hashlib.sha256()
        buffer = bytearray(MIB)
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                h.update(memoryview(buffer)[:n])
        return h.hexdigest()

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, files))


def timed(label: str, nbytes: int, fn: Callable[[], object], repeat: int) -> float:
    """Best of `repeat` runs: the machine's noise only ever slows a run down."""
    seconds = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        seconds = min(seconds, time.perf_counter() - started)
    print(f"{label:<38} {seconds:7.2f} s  {nbytes / seconds / MIB:8.0f} MiB/s")
    return nbytes / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="bytes of blobs, in GiB")
    parser.add_argument("--blob-mib", type=int, default=64, help="size of each blob")
    parser.add_argument("--jobs", type=int, default=16, help="parallel hashes, everywhere")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--dir", help="where to build the store (default: a temp dir)")
    args = parser.parse_args()

    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="regtool-bench-"))
    root = base / "store"
    total = int(args.gib * (1 << 30))
    try:
        t0 = time.perf_counter()
        files = write_store(root, total, args.blob_mib * MIB)
        print(
            f"store: {len(files)} blobs, {total / MIB:.0f} MiB, written in "
            f"{time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs, --jobs {args.jobs}"
        )
        for f in files:  # warm the page cache so that every contender reads from memory
            with open(f, "rb") as fh:
                while fh.read(16 * MIB):
                    pass

        command = [
            sys.executable,
            "-c",
            "from regtool.cli.main import main; main()",
            "verify",
            "--all",
            "--json",
            "--jobs",
            str(args.jobs),
            "-l",
            str(root),
        ]
        output: dict[str, bytes] = {}

        def regtool() -> None:
            done = subprocess.run(command, capture_output=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"regtool verify failed ({done.returncode}): {done.stderr!r}")
            seconds = json.loads(done.stdout)["totals"]["seconds"]
            if "json" not in output or seconds < json.loads(output["json"])["totals"]["seconds"]:
                output["json"] = done.stdout

        ours = timed("regtool verify --all", total, regtool, args.repeat)
        peak_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB -> MiB
        totals = json.loads(output["json"])["totals"]
        plain = timed(
            f"hashlib, {args.jobs} threads, one process",
            total,
            lambda: hashlib_threads(files, args.jobs),
            args.repeat,
        )
        sha256sum = 0.0
        if shutil.which("sha256sum"):
            listing = "\0".join(map(str, files)).encode()
            sha256sum = timed(
                f"sha256sum, {args.jobs} processes",
                total,
                lambda: subprocess.run(
                    ["xargs", "-0", "-n", "1", "-P", str(args.jobs), "sha256sum"],
                    input=listing,
                    capture_output=True,
                    check=True,
                ),
                args.repeat,
            )
        best = max(plain, sha256sum)
        inside = totals["bytes_hashed"] / totals["seconds"]
        print(
            f"regtool hashed {totals['bytes_hashed'] / MIB:.0f} MiB, "
            f"{totals['problems']} problems; peak RSS {peak_rss:.0f} MiB"
        )
        print(
            f"  of which verifying (its own clock): {totals['seconds']:.2f} s, "
            f"{inside / MIB:.0f} MiB/s; the rest is interpreter start-up and imports"
        )
        print(
            f"ratio regtool / best baseline: {ours / best:.2f} whole command, "
            f"{inside / best:.2f} verifying only (target >= 0.8)"
        )
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
