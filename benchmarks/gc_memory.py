"""Peak memory and time of `regtool gc --dry-run` over a simulated store of millions of
blobs: 1M against 10M in one run shows whether memory stays bounded and time linear.

    .venv/bin/python -m benchmarks.gc_memory [--blobs 1000000 10000000] [--manifests ...]

No backend holds ten million objects here, so a synthetic driver serves the listing the
way a store would: distribution's V2 layout, MANIFESTS tagged image manifests (by default
a tenth of the blobs: "1M manifests-worth of links" at 10M blobs), TAGS a repository,
each image of as many layers as make (1 - ORPHAN_SHARE) of the blobs referenced, the rest
orphaned blobs (which gc must list in its plan, so the plan grows with the garbage).
Listings and manifests are generated on request, not stored: the driver keeps only a
sorted array of 8-byte digest prefixes to find a manifest by its digest. Each size runs
in a process of its own; prints its peak RSS (absolute, target <= 1 GiB) and time, and
the time per blob of the larger run over the smaller.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import resource
import subprocess
import sys
import time
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from regtool.gc import collect
from regtool.gc.model import GcOptions
from regtool.layout.v2 import FILESYSTEM_ROOT, V2Layout
from regtool.oci import OCI_MANIFEST, Digest
from regtool.storage.base import BytesReader, DeleteReport, Driver, Entry, Prune, Writer

OLD = datetime.now(UTC) - timedelta(days=30)
_TAG_LINK = re.compile(r"/app(\d+)/_manifests/tags/t(\d+)/current/link$")
_DIGEST_LINK = re.compile(r"/(sha256|sha512)/([0-9a-f]+)/link$")


def digest_of(kind: str, n: int) -> Digest:
    return Digest("sha256", hashlib.sha256(f"{kind}-{n}".encode()).hexdigest())


class SyntheticStore(Driver):
    """Read-only, listing-shaped: just what gc reads, made up on request."""

    name = "synthetic"

    def __init__(self, blobs: int, manifests: int, orphan_share: float, tags: int = 10):
        self.images = manifests
        # manifest + config + layers per image; the rest of the blobs are orphans
        self.layers = max(0, int(blobs * (1 - orphan_share)) // manifests - 2)
        self.orphans = blobs - self.images * (self.layers + 2)
        self.tags = tags
        self.layout = V2Layout(self, FILESYSTEM_ROOT)
        prefixes = array("Q", (self._prefix(self.manifest_digest(i)) for i in range(manifests)))
        order = sorted(range(manifests), key=prefixes.__getitem__)
        self._prefixes = array("Q", (prefixes[i] for i in order))
        self._images = array("L", order)
        del prefixes, order

    @staticmethod
    def _prefix(digest: Digest) -> int:
        return int(digest.hex[:16], 16)

    def manifest_digest(self, i: int) -> Digest:
        return Digest.of(self._manifest(i))

    def _image_of(self, digest: Digest) -> int | None:
        """The image whose manifest has `digest` (prefixes may collide: checked)."""
        prefix = self._prefix(digest)
        at = bisect_left(self._prefixes, prefix)
        while at < len(self._prefixes) and self._prefixes[at] == prefix:
            i = self._images[at]
            if self.manifest_digest(i) == digest:
                return i
            at += 1
        return None

    def _layer(self, i: int, k: int) -> Digest:
        return digest_of(f"layer-{k}", i)

    def _manifest(self, i: int) -> bytes:
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": str(digest_of("config", i)),
                "size": 100,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": str(self._layer(i, k)),
                    "size": 1000,
                }
                for k in range(self.layers)
            ],
        }
        return json.dumps(doc).encode()

    def _repo(self, i: int) -> tuple[str, str]:
        return f"team{i // self.tags % 100}/app{i // self.tags}", f"t{i % self.tags}"

    def _blob_entries(self) -> Iterator[Entry]:
        for i in range(self.images):
            yield Entry(self.layout.blob_data(self.manifest_digest(i)), size=1500, modified=OLD)
            yield Entry(self.layout.blob_data(digest_of("config", i)), size=100, modified=OLD)
            for k in range(self.layers):
                yield Entry(self.layout.blob_data(self._layer(i, k)), size=1000, modified=OLD)
        for n in range(self.orphans):
            yield Entry(self.layout.blob_data(digest_of("orphan", n)), size=1000, modified=OLD)

    def _repository_entries(self) -> Iterator[Entry]:
        for i in range(self.images):
            digest = self.manifest_digest(i)
            name, tag = self._repo(i)
            size = len(str(digest))
            for path in (
                self.layout.tag_current_link(name, tag),
                self.layout.tag_index_link(name, tag, digest),
                self.layout.revision_link(name, digest),
            ):
                yield Entry(path, size=size, modified=OLD)
            for d in [digest_of("config", i)] + [self._layer(i, k) for k in range(self.layers)]:
                yield Entry(self.layout.layer_link(name, d), size=size, modified=OLD)

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        if prefix == self.layout.blobs_dir():
            yield from self._blob_entries()
        elif prefix == self.layout.repositories_dir():
            yield from self._repository_entries()

    def list(self, prefix: str = "") -> list[Entry]:
        parts = {
            "": "docker",
            "docker": "registry",
            "docker/registry": "v2",
            "docker/registry/v2": "blobs",
        }
        if prefix in parts:
            return [Entry(f"{prefix}/{parts[prefix]}".lstrip("/"), is_dir=True)]
        raise FileNotFoundError(prefix)

    def get(self, path: str) -> bytes:
        tag = _TAG_LINK.search(path)
        if tag:  # team<k>/app<n>/.../tags/t<m>/current/link: image n * tags + m
            return str(self.manifest_digest(int(tag[1]) * self.tags + int(tag[2]))).encode()
        link = _DIGEST_LINK.search(path)
        if link:  # a revision, _layers or tag index link names its digest in its path
            return f"{link[1]}:{link[2]}".encode()
        digest = self.layout.blob_digest(path)
        i = self._image_of(digest) if digest else None
        if i is None:
            raise FileNotFoundError(path)
        return self._manifest(i)

    def stat(self, path: str) -> Entry:
        raise FileNotFoundError(path)

    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        return BytesReader(self.get(path)[offset:])

    def writer(self, path: str, append: bool = False) -> Writer:
        raise NotImplementedError("read-only")

    def put_if_absent(self, path: str, data: bytes) -> bool:
        raise NotImplementedError("read-only")

    def move(self, src: str, dst: str) -> None:
        raise NotImplementedError("read-only")

    def delete(self, path: str) -> None:
        raise NotImplementedError("read-only")

    def delete_many(self, paths: Iterable[str]) -> DeleteReport:
        raise NotImplementedError("read-only")

    def create_root(self) -> None:
        raise NotImplementedError("read-only")

    def root_exists(self) -> bool:
        return True


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(blobs: int, manifests: int, orphan_share: float) -> None:
    """One size, in this process: prints one JSON line of figures."""
    start = time.perf_counter()
    store = SyntheticStore(blobs, manifests, orphan_share)
    built = time.perf_counter() - start
    baseline = rss_mib()
    start, cpu = time.perf_counter(), time.process_time()
    options = GcOptions(dry_run=True, min_age=timedelta(0), jobs=16)
    result = collect(store.layout, "synthetic", options)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    planned = result.count("blob")
    assert planned == store.orphans, (planned, store.orphans)
    figures = {
        "blobs": store.images * (store.layers + 2) + store.orphans,
        "manifests": store.images,
        "layers": store.layers,
        "orphans": store.orphans,
        "planned": planned,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "store_seconds": built,
        "baseline_mib": baseline,
        "peak_mib": rss_mib(),
        "spilled": result.items.spilled,
    }
    result.items.close()
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--manifests", type=int, nargs="*", help="default: a tenth of --blobs")
    parser.add_argument(
        "--orphan-share", type=float, default=0.5, help="share of the blobs no manifest references"
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    manifests = args.manifests or [b // 10 for b in args.blobs]
    if args.one:
        run_one(args.blobs[0], manifests[0], args.orphan_share)
        return
    runs = []
    for blobs, count in zip(args.blobs, manifests, strict=True):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.gc_memory",
                "--one",
                "--blobs",
                str(blobs),
                "--manifests",
                str(count),
                "--orphan-share",
                str(args.orphan_share),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        f = json.loads(done.stdout.strip().splitlines()[-1])
        runs.append(f)
        print(
            f"{f['blobs']:>11,} blobs, {f['manifests']:>9,} manifests of {f['layers']} layers, "
            f"{f['orphans']:,} orphans: gc --dry-run {f['seconds']:7.1f} s, "
            f"CPU {f['cpu_seconds']:.1f} s ({f['cpu_seconds'] / f['blobs'] * 1e6:.1f} us a blob), "
            f"peak RSS {f['peak_mib']:6.0f} MiB "
            f"(store alone {f['baseline_mib']:.0f} MiB; plan spilled: {f['spilled']})"
        )
    if len(runs) > 1:
        small, large = runs[0], runs[-1]
        for what in ("seconds", "cpu_seconds"):
            ratio = (large[what] / large["blobs"]) / (small[what] / small["blobs"])
            print(f"{what} per blob, largest over smallest: {ratio:.2f} (linear: 1.0)")
        print(f"peak RSS of the largest: {large['peak_mib']:.0f} MiB (target <= 1024 MiB)")


if __name__ == "__main__":
    main()
