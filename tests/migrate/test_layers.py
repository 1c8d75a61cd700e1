"""One V1 layer through the conversion stream: compressions by magic bytes, bounded
memory, fixed gzip bytes, and the tar check."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import tarfile
import tracemalloc

import pytest

from regtool.migrate.chains import parse_checksum
from regtool.migrate.layers import (
    CHUNK_SIZE,
    LayerDamaged,
    convert_layer,
    decompressed,
    detect_compression,
)
from regtool.migrate.tarcheck import TarChecker, TarDamaged


class _Sink:
    """A writer that keeps only the hash and size of what it is given."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0
        self.kept = bytearray()
        self.keep = True

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.keep:
            self.kept += data
        return len(data)


def _tar(files: dict[str, bytes], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


COMPRESS = {
    "gzip": lambda b: gzip.compress(b, mtime=0),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "tar": lambda b: b,
}


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_each_compression_is_found_by_its_magic_bytes(kind: str) -> None:
    raw = _tar({"a": b"x" * 5000, "b" * 150: b"long name"})
    data = COMPRESS[kind](raw)
    assert detect_compression(data[:8]) == kind
    sink = _Sink()
    layer = convert_layer(io.BytesIO(data), sink, "gzip")  # type: ignore[arg-type]
    assert layer.diff_id.hex == hashlib.sha256(raw).hexdigest()
    assert gzip.decompress(bytes(sink.kept)) == raw
    assert layer.digest.hex == sink.hash.hexdigest() and layer.size == sink.size
    assert not layer.empty and layer.source_size == len(data)


def test_gzip_bytes_are_fixed() -> None:
    raw = _tar({"a": b"same"})
    outs = []
    for _ in range(2):
        sink = _Sink()
        convert_layer(io.BytesIO(raw), sink, "gzip")  # type: ignore[arg-type]
        outs.append(bytes(sink.kept))
    assert outs[0] == outs[1]
    # no name, mtime 0, OS unknown: nothing of the machine or the moment
    assert outs[0][:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def test_concatenated_gzip_members_and_zero_padding() -> None:
    raw = _tar({"a": b"1" * 3000, "b": b"2" * 3000})
    half = len(raw) // 2
    data = gzip.compress(raw[:half]) + gzip.compress(raw[half:]) + b"\0" * 512
    assert (
        b"".join(decompressed("gzip", [data[i : i + 100] for i in range(0, len(data), 100)])) == raw
    )


def test_garbage_after_the_stream_is_damage() -> None:
    data = gzip.compress(_tar({"a": b"1"})) + b"\0\0junk"
    with pytest.raises(LayerDamaged):
        b"".join(decompressed("gzip", [data]))


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz"])
def test_a_bomb_is_handed_on_in_bounded_pieces(kind: str) -> None:
    raw = _tar({"zeros": bytes(64 << 20)})
    data = COMPRESS[kind](raw)
    sizes = [len(p) for p in decompressed(kind, [data])]
    assert sum(sizes) == len(raw)
    assert max(sizes) <= CHUNK_SIZE


def test_memory_stays_flat() -> None:
    raw_size = 96 << 20
    data = lzma.compress(_tar({"zeros": bytes(raw_size)}))
    sink = _Sink()
    sink.keep = False
    tracemalloc.start()
    try:
        layer = convert_layer(io.BytesIO(data), sink, "gzip")  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert layer.size == sink.size
    assert peak < 12 << 20, peak


def test_checksum_checked_over_json_and_layer() -> None:
    raw = _tar({"a": b"1"})
    prefix = b'{"id": "x"}\n'
    good = hashlib.sha256(prefix + raw).hexdigest()
    convert_layer(io.BytesIO(raw), _Sink(), "none", prefix, good)  # type: ignore[arg-type]
    with pytest.raises(LayerDamaged, match="checksum mismatch"):
        convert_layer(io.BytesIO(raw), _Sink(), "none", prefix, "0" * 64)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'["sha256:' + b"a" * 64 + b'"]', "a" * 64),
        (b'"sha256:' + b"b" * 64 + b'"', "b" * 64),
        (b"sha256:" + b"c" * 64 + b"\n", "c" * 64),
        (b'["tarsum+sha256:' + b"d" * 64 + b'"]', None),
        (b"[" * 3000 + b"]" * 3000, None),  # nested too deeply: no checksum, no traceback
        (b"\xff\xfe[", None),
    ],
)
def test_checksum_files(data: bytes, expected: str | None) -> None:
    assert parse_checksum(data) == expected


def test_empty_layers() -> None:
    for data in (b"", b"\0" * 1024, gzip.compress(b"\0" * 1024), gzip.compress(b"")):
        layer = convert_layer(io.BytesIO(data), _Sink(), "gzip")  # type: ignore[arg-type]
        assert layer.empty, data


def test_tar_check() -> None:
    pax = _tar({"ü" * 120: b"x" * 700}, tarfile.PAX_FORMAT)
    checker = TarChecker()
    for i in range(0, len(pax), 7):
        checker.feed(pax[i : i + 7])
    checker.finish()
    assert checker.members == 1
    cut = TarChecker()
    cut.feed(pax[:1100])
    with pytest.raises(TarDamaged, match="cut short"):
        cut.finish()
    bad = bytearray(_tar({"a": b"1"}))
    bad[0] ^= 1
    with pytest.raises(TarDamaged, match="checksum"):
        TarChecker().feed(bytes(bad))
