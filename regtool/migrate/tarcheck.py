"""A tar archive's structure, checked while it streams past, without keeping it.

Each 512-byte header's checksum is verified and each member's data skipped by its size
(POSIX ustar, as GNU tar and Go's archive/tar write it; GNU and PAX extension headers are
members like any other). An archive must end on a member boundary; the two zero blocks
that mark its end may be missing (old clients wrote archives without them).
"""

from __future__ import annotations

BLOCK = 512


class TarDamaged(ValueError):
    """The stream is not a tar archive, or one cut short."""


class TarChecker:
    """Feed the uncompressed layer in chunks of any size with `feed`, then `finish`.
    `members` counts the entries seen: none means an empty layer."""

    def __init__(self) -> None:
        self.members = 0
        self._pending = bytearray()  # an incomplete header block
        self._skip = 0  # data bytes (padded to a block) still to pass over
        self._ended = False  # a zero block was seen: the end-of-archive marker
        self._offset = 0

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            if self._skip:
                n = min(self._skip, len(view))
                self._skip -= n
                self._offset += n
                view = view[n:]
                continue
            if self._ended:
                # after the end marker only padding may follow (zeros, record blocking)
                if bytes(view).count(0) != len(view):
                    raise TarDamaged(f"data after the end of the archive (offset {self._offset})")
                self._offset += len(view)
                return
            need = BLOCK - len(self._pending)
            self._pending += view[:need]
            view = view[need:]
            if len(self._pending) == BLOCK:
                self._header(bytes(self._pending))
                self._offset += BLOCK
                self._pending.clear()

    def _header(self, block: bytes) -> None:
        if block.count(0) == BLOCK:
            self._ended = True
            return
        stored = _octal(block[148:156])
        actual = sum(block[:148]) + 8 * 32 + sum(block[156:])
        if stored is None or stored != actual:
            raise TarDamaged(f"not a tar header at offset {self._offset} (bad checksum)")
        size = _octal(block[124:136]) if block[124] & 0x80 == 0 else _base256(block[124:136])
        if size is None:
            raise TarDamaged(f"tar header at offset {self._offset} has no valid size")
        typeflag = block[156:157]
        # hard links, symlinks, devices, directories and FIFOs carry no data
        if typeflag in (b"1", b"2", b"3", b"4", b"5", b"6"):
            size = 0
        self.members += typeflag not in (b"x", b"g", b"L", b"K")
        self._skip = -(-size // BLOCK) * BLOCK

    def finish(self) -> None:
        """`TarDamaged` if the stream stopped inside a header or a member's data."""
        if self._skip or self._pending:
            raise TarDamaged(f"tar archive cut short at offset {self._offset}")


def _octal(field: bytes) -> int | None:
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


def _base256(field: bytes) -> int:
    """GNU's binary size for members of 8 GiB and more: big-endian after the marker bit."""
    return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
