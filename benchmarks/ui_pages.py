"""The web UI's pages against what an API-based UI asks distribution for the same page.

    .venv/bin/python -m benchmarks.ui_pages [--repositories 10000] [--tags 1000] [--rounds 5]
        [--store DIR]

One local store: REPOSITORIES repositories of one tag each, and `big/app` with TAGS tags
(each its own manifest), every image of two layers: its own and one base layer they all
share, written with the layout's own paths as a push stores them. `regtool serve` (its
UI at /ui/) and distribution (`docker-registry serve`) run on that same store, each as
its own process, regtool with a new manifest-facts file. Measured:

- regtool, cold: the first request of the catalog's first page (`/ui/`, 50
  repositories) right after start-up (the names from a listing of directories, the
  page's repositories read alone, while the whole walk begins in the background), then
  the first of `big/app`'s repository page;
- regtool, warm (after the cold request): those two pages and an image page, whose
  base layer names the first of the 11,000 images that share it (once the store's index,
  made in the background after the walk, is there): time to first byte, total time and
  size of the page;
- regtool started again on the same store and facts file: the first requests of the two
  pages (no manifest read: the facts cache answers);
- an API-based UI (as joxit's docker-registry-ui does) against distribution: for the
  catalog page, `_catalog` then, for each of the page's repositories, its tags list and
  one manifest GET per tag; for the repository page, the tags list and one manifest GET
  per tag, six requests at a time (a browser's connections per host). An API-based UI
  cannot say which images of other repositories share a layer without reading every
  manifest of the registry, so the image page has no counterpart.

Prints each figure and distribution's time over regtool's warm time (target >= 5;
regtool's first byte <= 200 ms and pages < 300 KB).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from benchmarks.serve_throughput import start_regtool
from regtool.layout.detect import default_layout
from regtool.layout.v2 import V2Layout, link_content
from regtool.oci import Digest
from regtool.storage.local import LocalDriver
from regtool.ui.data import PAGE_SIZE
from tests.services.distribution import filesystem_storage, start_distribution

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = {"accept": f"{OCI_MANIFEST},application/vnd.oci.image.index.v1+json"}
CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}})
BASE = b"the base layer every image shares" * 64
IMAGE_PAGE = "/ui/image?name=org00/app00000&ref=latest"


def put(root: Path, path: str, data: bytes) -> None:
    """A plain write: the driver's atomic put (temp file, fsync, rename) is slow for a
    store of 100,000 files, and this one is written before anything reads it."""
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def put_blob(layout: V2Layout, root: Path, name: str, data: bytes, seen: set[Digest]) -> Digest:
    digest = Digest("sha256", hashlib.sha256(data).hexdigest())
    if digest not in seen:
        put(root, layout.blob_data(digest), data)
        seen.add(digest)
    put(root, layout.layer_link(name, digest), link_content(digest))
    return digest


def put_image(layout: V2Layout, root: Path, name: str, tag: str, n: int, seen: set[Digest]) -> None:
    config = CONFIG.encode()
    layer = f"layer {n}".encode() * 64
    cfg = put_blob(layout, root, name, config, seen)
    base = put_blob(layout, root, name, BASE, seen)
    lay = put_blob(layout, root, name, layer, seen)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": str(cfg),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": str(base),
                    "size": len(BASE),
                },
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": str(lay),
                    "size": len(layer),
                },
            ],
        }
    ).encode()
    digest = Digest("sha256", hashlib.sha256(manifest).hexdigest())
    put(root, layout.blob_data(digest), manifest)
    for path in (
        layout.revision_link(name, digest),
        layout.tag_index_link(name, tag, digest),
        layout.tag_current_link(name, tag),
    ):
        put(root, path, link_content(digest))


def build(root: Path, repositories: int, tags: int) -> None:
    layout = default_layout(LocalDriver(root))
    seen: set[Digest] = set()
    for i in range(repositories):
        put_image(layout, root, f"org{i % 100:02d}/app{i:05d}", "latest", i, seen)
    for t in range(tags):
        put_image(layout, root, "big/app", f"v{t:04d}", repositories + t, seen)


def fetch_page(client: httpx.Client, path: str) -> tuple[float, float, int]:
    """(seconds to the first byte of the body, seconds in all, bytes)."""
    started = time.perf_counter()
    with client.stream("GET", path) as response:
        response.raise_for_status()
        first = None
        size = 0
        for chunk in response.iter_raw():
            first = first or time.perf_counter()
            size += len(chunk)
    ended = time.perf_counter()
    return (first or ended) - started, ended - started, size


def regtool_page(url: str, path: str, rounds: int) -> tuple[float, float, int]:
    """Medians over `rounds` requests: (seconds to the first byte, seconds in all); bytes."""
    with httpx.Client(base_url=url, timeout=120) as client:
        runs = [fetch_page(client, path) for _ in range(rounds)]
    return (
        statistics.median(r[0] for r in runs),
        statistics.median(r[1] for r in runs),
        runs[-1][2],
    )


def first_request(url: str, path: str) -> tuple[float, float]:
    """(seconds to the first byte, seconds in all) of one request."""
    with httpx.Client(base_url=url, timeout=300) as client:
        first, total, _ = fetch_page(client, path)
    return first, total


def wait_for_index(url: str, started: float) -> float:
    """Seconds from `started` until the image page names images of other repositories."""
    with httpx.Client(base_url=url, timeout=120) as client:
        while "still being read" in client.get(IMAGE_PAGE).text:
            time.sleep(0.2)
    return time.perf_counter() - started


async def _each(jobs: list[Callable[[], Awaitable[None]]], at_once: int) -> None:
    gate = asyncio.Semaphore(at_once)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(one(j) for j in jobs))


async def api_catalog_page(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        # the whole catalog, page by page (distribution: 1,000 at most), to filter it
        names: list[str] = []
        path = "/v2/_catalog?n=1000"
        while path:
            r = await client.get(path)
            r.raise_for_status()
            names += r.json()["repositories"]
            path = r.links.get("next", {}).get("url", "")
        names = names[:PAGE_SIZE]

        async def repository(name: str) -> None:
            tags = (await client.get(f"/v2/{name}/tags/list")).json()["tags"]
            for tag in tags:
                (await client.get(f"/v2/{name}/manifests/{tag}", headers=ACCEPT)).raise_for_status()

        await _each([lambda n=n: repository(n) for n in names], 6)


async def api_repository_page(url: str, name: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        tags = (await client.get(f"/v2/{name}/tags/list")).json()["tags"]

        async def manifest(tag: str) -> None:
            (await client.get(f"/v2/{name}/manifests/{tag}", headers=ACCEPT)).raise_for_status()

        await _each([lambda t=t: manifest(t) for t in tags], 6)


def api_time(run: Callable[[], Awaitable[None]], rounds: int) -> float:
    asyncio.run(run())  # warm, as regtool's
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        asyncio.run(run())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:6.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repositories", type=int, default=10_000)
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--store",
        type=Path,
        help="build the store here once and use it again in later runs (else a new one)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regtool-ui-bench-") as tmp:
        root = args.store or Path(tmp) / "store"
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")  # a new facts file
        shape = f"{args.repositories} repositories + big/app with {args.tags} tags"
        built = root / "built"
        if built.exists() and built.read_text() == shape:
            print(f"store: {shape}, from an earlier run", flush=True)
        else:
            started = time.perf_counter()
            build(root, args.repositories, args.tags)
            built.write_text(shape)
            print(f"store: {shape}, written in {time.perf_counter() - started:.1f} s", flush=True)
        catalog, repository = "/ui/", "/ui/repository?name=big/app"
        distribution = start_distribution(Path(tmp) / "dist", filesystem_storage(root))
        proc, url = start_regtool(root)
        started = time.perf_counter()
        try:
            for label, path in (("catalog", catalog), ("repository", repository)):
                first, total = first_request(url, path)
                print(f"{label:10} regtool UI, cold: first byte {ms(first)}, page {ms(total)}")
            indexed = wait_for_index(url, started)
            print(f"store indexed (layers shared across repositories) {indexed:.1f} s after start")
            apis = {
                "catalog": lambda: api_catalog_page(distribution.url),
                "repository": lambda: api_repository_page(distribution.url, "big/app"),
            }
            for label, path in (
                ("catalog", catalog),
                ("repository", repository),
                ("image", IMAGE_PAGE),
            ):
                first, total, size = regtool_page(url, path, args.rounds)
                print(
                    f"{label:10} regtool UI, warm: first byte {ms(first)}, "
                    f"page {ms(total)}, {size / 1000:6.1f} kB",
                    end="",
                    flush=True,
                )
                if label in apis:
                    theirs = api_time(apis[label], args.rounds)
                    print(
                        f" | API-based UI on distribution: {ms(theirs)} | "
                        f"ratio {theirs / total:5.1f}x",
                        end="",
                    )
                print(flush=True)
            proc.terminate()
            proc.wait()
            proc, url = start_regtool(root)  # the same facts file
            for label, path in (("catalog", catalog), ("repository", repository)):
                first, total = first_request(url, path)
                print(
                    f"{label:10} regtool UI started again: first byte {ms(first)}, page {ms(total)}"
                )
        finally:
            proc.terminate()
            proc.wait()
            distribution.stop()


if __name__ == "__main__":
    main()
