"""One V1 layer streamed into a V2 layer blob, in one pass and in fixed-size chunks:

    V1 `layer` --> sha256(json + "\n" + layer)         the V1 `_checksum`, checked
        |--> decompress (by magic bytes: gzip, bzip2, xz, zstd or a plain tar)
               |--> tar structure check, sha256              the config's diff_id
               |--> recompress (gzip, zstd or none) --> sha256 + writer   the blob

Memory stays flat whatever the layer's size: every stage hands on at most `CHUNK_SIZE`
bytes at a time (a decompressor is asked for bounded output, so a layer that expands a
thousandfold cannot flood memory). zlib, bz2, lzma and hashlib release the GIL on large
buffers, so `--jobs` layers convert in parallel threads.
"""

from __future__ import annotations

import bz2
import hashlib
import itertools
import lzma
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from regtool.migrate.tarcheck import TarChecker, TarDamaged
from regtool.oci import Digest
from regtool.storage.base import Writer

CHUNK_SIZE = 1 << 20

#: Called with the number of V1 layer bytes just read (progress).
OnChunk = Callable[[int], None]

#: How a V2 layer is compressed (`--compression`).
Compression = Literal["gzip", "zstd", "none"]

#: deflate level of the layers written: speed before ratio, since every byte of a
#: registry passes through once (level 6, Go's default, takes three times as long for
#: some 10% less).
GZIP_LEVEL = 1
ZSTD_LEVEL = 3

#: Magic bytes of the compressions the V1 registry's clients pushed, and a few more.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


class LayerDamaged(ValueError):
    """The V1 layer cannot be converted: a bad checksum, a corrupt stream or tar."""


def detect_compression(head: bytes) -> str:
    """`gzip`, `bzip2`, `xz`, `zstd` by the stream's first bytes, else `tar`."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "tar"


@dataclass(frozen=True)
class ConvertedLayer:
    """What converting one V1 layer gave. `size`/`digest`: the blob written (its
    compressed form); `diff_id`: the sha256 of the uncompressed tar; `empty`: the tar has
    no member, so the image becomes an `empty_layer` history entry, not a layer.
    `source_size`: bytes of the V1 layer read."""

    digest: Digest
    diff_id: Digest
    size: int
    empty: bool
    source_size: int


# --- decompression ------------------------------------------------------------------------
def _decompressor(kind: str) -> Any:
    if kind == "gzip":
        return zlib.decompressobj(wbits=31)
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    if kind == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    try:
        import zstandard
    except ImportError:
        raise LayerDamaged("a zstd layer needs the zstandard package") from None
    return zstandard.ZstdDecompressor().decompressobj()


def decompressed(kind: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The uncompressed stream of compressed `chunks`; each piece at most `CHUNK_SIZE`
    bytes (zstd: what one input chunk gives). Concatenated streams (gzip members as pigz
    writes them, multi-stream bzip2) are followed one after another; zero bytes after the
    last are padding. `LayerDamaged` for a corrupt or truncated stream."""
    if kind == "tar":
        yield from chunks
        return
    try:
        yield from _decompress(kind, chunks)
    except (zlib.error, OSError, lzma.LZMAError, EOFError) as e:
        raise LayerDamaged(f"corrupt {kind} stream: {e}") from None
    except Exception as e:
        if type(e).__module__.startswith("zstd"):
            raise LayerDamaged(f"corrupt zstd stream: {e}") from None
        raise


def _decompress(kind: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
    d = _decompressor(kind)
    padding = False  # past the last stream: only zero bytes may follow
    for chunk in chunks:
        pending = chunk
        while pending:
            if padding or d.eof:
                if not pending.strip(b"\0"):
                    padding = True
                    break
                if padding:
                    raise LayerDamaged(f"data after the end of the {kind} stream")
                d = _decompressor(kind)
            out, pending = _step(kind, d, pending)
            if out:
                yield out
            while _more(kind, d, out):  # output held back by the bound
                out, _ = _step(kind, d, b"")
                if out:
                    yield out
    if not d.eof:
        raise LayerDamaged(f"{kind} stream cut short")


def _step(kind: str, d: Any, data: bytes) -> tuple[bytes, bytes]:
    """(output, input left over) of one bounded call."""
    if kind == "zstd":
        return d.decompress(data), d.unused_data if d.eof else b""
    out = d.decompress(data, CHUNK_SIZE)
    if kind == "gzip":
        return out, d.unused_data if d.eof else d.unconsumed_tail
    return out, d.unused_data if d.eof else b""


def _more(kind: str, d: Any, out: bytes) -> bool:
    if d.eof or kind == "zstd":
        return False
    if kind == "gzip":
        return len(out) == CHUNK_SIZE and not d.unconsumed_tail
    return not d.needs_input


# --- compression --------------------------------------------------------------------------
class _Gzip:
    """gzip with a fixed header (no name, mtime 0, OS "unknown", as Go's compress/gzip
    writes it), so the same tar always gives the same bytes."""

    HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc = 0
        self._size = 0
        self._started = False

    def compress(self, data: bytes) -> bytes:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        out = self._deflate.compress(data)
        if not self._started:
            self._started = True
            return self.HEADER + out
        return out

    def flush(self) -> bytes:
        head = b"" if self._started else self.HEADER
        tail = struct.pack("<II", self._crc, self._size & 0xFFFFFFFF)
        return head + self._deflate.flush() + tail


class _Plain:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def _compressor(compression: Compression) -> Any:
    if compression == "gzip":
        return _Gzip()
    if compression == "none":
        return _Plain()
    import zstandard

    # no content size, no dictionary, one thread: the frame depends on the bytes alone
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=False).compressobj()


# --- the pass -----------------------------------------------------------------------------
def _chunks(reader: BinaryIO, on_chunk: OnChunk | None) -> Iterator[bytes]:
    while chunk := reader.read(CHUNK_SIZE):
        if on_chunk is not None:
            on_chunk(len(chunk))
        yield chunk


def convert_layer(
    reader: BinaryIO,
    writer: Writer,
    compression: Compression,
    checksum_prefix: bytes | None = None,
    expected_checksum: str | None = None,
    on_chunk: OnChunk | None = None,
) -> ConvertedLayer:
    """Stream the V1 layer from `reader` into `writer` (which the caller commits or
    cancels), recompressed with `compression`. With `expected_checksum` (`<hex>` of the V1
    `_checksum`), the sha256 of `checksum_prefix` (the image JSON and a newline) and the
    layer must match it. `on_chunk` gets the number of V1 layer bytes read, as they are.
    Raises `LayerDamaged` for a bad checksum, stream or tar; storage errors as they come."""
    v1_hash = hashlib.sha256(checksum_prefix or b"")
    read = 0

    def source() -> Iterator[bytes]:
        nonlocal read
        for chunk in _chunks(reader, on_chunk):
            v1_hash.update(chunk)
            read += len(chunk)
            yield chunk

    raw = source()
    first = next(raw, b"")
    kind = detect_compression(first)
    tar = TarChecker()
    diff_hash = hashlib.sha256()
    blob_hash = hashlib.sha256()
    size = 0
    compressor = _compressor(compression)

    def emit(data: bytes) -> None:
        nonlocal size
        if data:
            blob_hash.update(data)
            writer.write(data)
            size += len(data)

    try:
        for piece in decompressed(kind, itertools.chain([first] if first else [], raw)):
            tar.feed(piece)
            diff_hash.update(piece)
            emit(compressor.compress(piece))
        tar.finish()
    except TarDamaged as e:
        raise LayerDamaged(f"corrupt tar ({kind} layer): {e}") from None
    emit(compressor.flush())
    if expected_checksum is not None and v1_hash.hexdigest() != expected_checksum:
        raise LayerDamaged(
            f"checksum mismatch: _checksum says sha256:{expected_checksum[:12]}…, "
            f"the image's json and layer give sha256:{v1_hash.hexdigest()[:12]}…"
        )
    return ConvertedLayer(
        Digest("sha256", blob_hash.hexdigest()),
        Digest("sha256", diff_hash.hexdigest()),
        size,
        tar.members == 0,
        read,
    )
