"""Many clients, small images: `regtool serve` against distribution, requests per second.

    .venv/bin/python -m benchmarks.serve_small_images [--images 200] [--clients 32]

Both registries run as their own processes on loopback, each on a fresh local directory
(distribution: Debian's `docker-registry`). CLIENTS concurrent clients (asyncio + httpx,
the same client for both) push IMAGES small images, the way docker and skopeo do: per
blob a HEAD, a POST and a PUT ?digest=; then the manifest PUT. Then they pull every image:
manifest GET and a GET of each blob, content checked. Prints requests per second for each
phase and registry, regtool's ratio (target >= 0.8), and the regtool process's peak RSS
(target < 300 MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.serve_throughput import peak_rss_mib, start_regtool
from tests.services.distribution import filesystem_storage, start_distribution

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class SmallImage:
    repo: str
    tag: str
    blobs: dict[str, bytes]  # digest -> content (config first, then the layer)
    manifest: bytes

    @classmethod
    def make(cls, n: int) -> SmallImage:
        config = json.dumps({"architecture": "amd64", "os": "linux", "n": n}).encode()
        layer = os.urandom(4096)
        blobs = {f"sha256:{hashlib.sha256(b).hexdigest()}": b for b in (config, layer)}
        (config_digest, layer_digest) = blobs
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest,
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        return cls(f"bench/app{n % 20}", f"t{n}", blobs, manifest)


async def push(client: httpx.AsyncClient, image: SmallImage) -> int:
    for digest, data in image.blobs.items():
        head = await client.head(f"/v2/{image.repo}/blobs/{digest}")
        if head.status_code == 200:
            continue
        start = await client.post(f"/v2/{image.repo}/blobs/uploads/")
        start.raise_for_status()
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        done = await client.put(
            f"{location}{sep}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        done.raise_for_status()
    put = await client.put(
        f"/v2/{image.repo}/manifests/{image.tag}",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    put.raise_for_status()
    return 3 * len(image.blobs) + 1


async def pull(client: httpx.AsyncClient, image: SmallImage) -> int:
    got = await client.get(
        f"/v2/{image.repo}/manifests/{image.tag}", headers={"Accept": OCI_MANIFEST}
    )
    got.raise_for_status()
    assert got.content == image.manifest
    for digest, data in image.blobs.items():
        blob = await client.get(f"/v2/{image.repo}/blobs/{digest}")
        blob.raise_for_status()
        assert blob.content == data
    return 1 + len(image.blobs)


async def phase(
    url: str,
    images: list[SmallImage],
    clients: int,
    step: Callable[[httpx.AsyncClient, SmallImage], Awaitable[int]],
) -> float:
    """Requests per second of `step` over all images, `clients` at a time."""
    queue: asyncio.Queue[SmallImage] = asyncio.Queue()
    for image in images:
        queue.put_nowait(image)
    requests = 0

    async def worker() -> None:
        nonlocal requests
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            while not queue.empty():
                done = await step(client, queue.get_nowait())
                requests += done  # after the await: `requests += await ...` loses updates

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return requests / (time.perf_counter() - start)


def measure(url: str, count: int, clients: int) -> tuple[float, float]:
    images = [SmallImage.make(n) for n in range(count)]
    push_rate = asyncio.run(phase(url, images, clients, push))
    pull_rate = asyncio.run(phase(url, images, clients, pull))
    return push_rate, pull_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp:
        root = Path(tmp)
        dist = start_distribution(
            root / "dist", filesystem_storage(root / "dist-store"), log_level="error"
        )
        try:
            d_push, d_pull = measure(dist.url, args.images, args.clients)
        finally:
            dist.stop()
        proc, url = start_regtool(root / "regtool-store")
        try:
            r_push, r_pull = measure(url, args.images, args.clients)
            rss = peak_rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"{args.images} small images, {args.clients} concurrent clients, local filesystem")
    print(
        f"push  regtool {r_push:7.0f} req/s   distribution {d_push:7.0f} req/s   "
        f"ratio {r_push / d_push:.2f} (target >= 0.8)"
    )
    print(
        f"pull  regtool {r_pull:7.0f} req/s   distribution {d_pull:7.0f} req/s   "
        f"ratio {r_pull / d_pull:.2f} (target >= 0.8)"
    )
    print(f"regtool serve peak RSS: {rss:.0f} MiB (target < 300)")


if __name__ == "__main__":
    main()
