"""Reading blob content for integrity checks: streaming hashes and one walk of all blobs.

Hashing streams in fixed chunks into one reused buffer, so memory stays flat whatever the
blob size; hashlib releases the GIL on large updates, so several blobs hash in parallel
threads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from regtool.layout.v1 import V1Layout
from regtool.layout.v2 import V2Layout
from regtool.oci import Digest
from regtool.storage.base import Entry

CHUNK_SIZE = 1 << 20

#: Called with the number of bytes just hashed (for progress reporting).
OnChunk = Callable[[int], None]


@dataclass(frozen=True)
class Hashed:
    """What a stream's content hashes to, and how many bytes it had."""

    digest: Digest
    size: int


def hash_stream(
    reader: BinaryIO,
    algorithm: str = "sha256",
    on_chunk: OnChunk | None = None,
    chunk_size: int = CHUNK_SIZE,
    prefix: bytes = b"",
) -> Hashed:
    """Hash everything `reader` yields (after `prefix`), `chunk_size` bytes at a time."""
    hasher = hashlib.new(algorithm)
    hasher.update(prefix)
    size = 0
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    readinto = getattr(reader, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(view)
            if not n:
                break
            hasher.update(view[:n])
        else:  # readers without readinto: one short-lived chunk at a time
            data = reader.read(chunk_size)
            if not data:
                break
            n = len(data)
            hasher.update(data)
        size += n
        if on_chunk is not None:
            on_chunk(n)
    return Hashed(Digest(algorithm, hasher.hexdigest()), size)


def hash_blob(
    layout: V2Layout,
    digest: Digest,
    on_chunk: OnChunk | None = None,
    chunk_size: int = CHUNK_SIZE,
    stored_as: Digest | None = None,
) -> Hashed:
    """Hash a blob's data with its digest's algorithm; `PathNotFound` if it is absent.
    `stored_as`: the digest whose data holds it, when another (an alias's target, see
    `V2Layout.resolve_blob`)."""
    with layout.open_blob(stored_as or digest) as reader:
        return hash_stream(reader, digest.algorithm, on_chunk, chunk_size)


def blob_size(layout: V2Layout, digest: Digest) -> int:
    """The blob's size in storage (a Swift DLO: the sum of its segments)."""
    return layout.driver.stat(layout.blob_data(digest)).size or 0


def walk_blobs(
    layout: V2Layout, entries: Iterable[Entry] | None = None
) -> Iterator[tuple[Digest, Entry]]:
    """Every blob in `blobs/` with its entry, from one walk (or from `entries`, a walk of
    `blobs/` the caller made). Files that are not `<alg>/<2 hex>/<hex>/data` with a valid
    digest are not blobs and are skipped."""
    for entry in layout.driver.walk(layout.blobs_dir()) if entries is None else entries:
        digest = layout.blob_digest(entry.path)
        if digest is not None:
            yield digest, entry


def v1_checksum(
    layout: V1Layout,
    image_id: str,
    json_bytes: bytes,
    on_chunk: OnChunk | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Hashed:
    """The V1 registry's checksum of an image: sha256(json + b"\\n" + layer), the layer
    streamed. `size` counts the layer's bytes only. `PathNotFound` without a layer."""
    with layout.driver.open(layout.image_file(image_id, "layer")) as reader:
        hashed = hash_stream(reader, "sha256", on_chunk, chunk_size, prefix=json_bytes + b"\n")
    return hashed
