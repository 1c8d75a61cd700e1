"""Peak memory of `regtool gc --dry-run` over a store of a million blobs.

    .venv/bin/python -m benchmarks.gc_memory [--blobs 1000000] [--layers 10]

No backend holds a million objects here, so a synthetic driver serves the listing the way
a store would: distribution's V2 layout, REPOS x TAGS tagged image manifests of LAYERS
layers each referencing (1 - ORPHAN_SHARE) of the blobs, the rest orphaned blobs (which
gc must list in its plan, so memory grows with the garbage too). Listings and
objects are generated on request, so the driver itself holds almost nothing; the figure
is what gc needs. Prints the peak RSS over the interpreter's baseline (target < 500 MiB)
and the plan's size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from regtool.gc import collect
from regtool.gc.model import GcOptions
from regtool.layout.v2 import FILESYSTEM_ROOT, V2Layout
from regtool.oci import OCI_MANIFEST, Digest
from regtool.storage.base import BytesReader, DeleteReport, Driver, Entry, Writer

OLD = datetime.now(UTC) - timedelta(days=30)


def digest_of(kind: str, n: int) -> Digest:
    return Digest("sha256", hashlib.sha256(f"{kind}-{n}".encode()).hexdigest())


class SyntheticStore(Driver):
    """Read-only, listing-shaped: just what gc reads, made up on request."""

    name = "synthetic"

    def __init__(self, blobs: int, layers: int, orphan_share: float, tags: int = 10):
        self.layers = layers
        # manifest + config + layers per image; the rest of the blobs are orphans
        self.images = int(blobs * (1 - orphan_share)) // (layers + 2)
        self.orphans = blobs - self.images * (layers + 2)
        self.tags = tags
        self.layout = V2Layout(self, FILESYSTEM_ROOT)
        self.manifests: dict[Digest, int] = {}  # digest -> image number, for get()
        for i in range(self.images):
            self.manifests[Digest.of(self._manifest(i))] = i
        self.by_path = {self.layout.blob_data(d): i for d, i in self.manifests.items()}

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
        for digest, _ in self.manifests.items():
            yield Entry(self.layout.blob_data(digest), size=1500, modified=OLD)
        for i in range(self.images):
            yield Entry(self.layout.blob_data(digest_of("config", i)), size=100, modified=OLD)
            for k in range(self.layers):
                yield Entry(self.layout.blob_data(self._layer(i, k)), size=1000, modified=OLD)
        for n in range(self.orphans):
            yield Entry(self.layout.blob_data(digest_of("orphan", n)), size=1000, modified=OLD)

    def _repository_entries(self) -> Iterator[Entry]:
        for digest, i in self.manifests.items():
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

    def walk(self, prefix: str = "", *, temporaries: bool = False) -> Iterator[Entry]:
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
        if path in self.by_path:
            return self._manifest(self.by_path[path])
        raise FileNotFoundError(path)

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=1_000_000)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument(
        "--orphan-share", type=float, default=0.5, help="share of the blobs no manifest references"
    )
    args = parser.parse_args()
    store = SyntheticStore(args.blobs, args.layers, args.orphan_share)
    baseline = rss_mib()
    start = time.perf_counter()
    options = GcOptions(dry_run=True, min_age=timedelta(0), jobs=16)
    result = collect(store.layout, "synthetic", options)
    seconds = time.perf_counter() - start
    peak = rss_mib() - baseline
    blobs = sum(1 for i in result.items if i.kind == "blob")
    print(
        f"store: {store.images * (args.layers + 2) + store.orphans} blobs "
        f"({store.images} tagged images of {args.layers} layers, {store.orphans} orphans)"
    )
    print(f"gc --dry-run: {seconds:.1f} s, plans to delete {blobs} blobs")
    print(f"peak RSS over baseline: {peak:.0f} MiB (target < 500 MiB)")
    assert blobs == store.orphans, (blobs, store.orphans)


if __name__ == "__main__":
    main()
