"""The Swift driver reads a DLO by its segments, several at a time, instead of through
Swift's DLO middleware (which the test Swift runs with its default rate limit: after the
10th segment, one a second); it falls back to the middleware where the segments cannot be
listed or the listing disagrees with the DLO's HEAD.

Which requests reach Swift is seen through `SwiftFaultProxy.seen`."""

from __future__ import annotations

import io
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast
from urllib.parse import unquote

import pytest
from swiftclient.client import Connection  # type: ignore[import-untyped]
from swiftclient.exceptions import ClientException  # type: ignore[import-untyped]

from regtool.errors import StorageError, TransientError
from regtool.storage.retry import RetryingDriver
from regtool.storage.swift import SwiftDriver
from regtool.storage.swift.segmented import (
    AHEAD,
    FIRST,
    PIECE,
    READ,
    THREADS,
    Buffers,
    Fetch,
    Piece,
    PieceReader,
    dlo_etag,
    pieces,
)
from tests.services.swift import SwiftService
from tests.services.swift_faults import SwiftFaultProxy

pytestmark = pytest.mark.swift

SEGMENT = 1000
SIZE = 25 * SEGMENT + 500  # 26 segments: 16 s through the rate-limited middleware


@pytest.fixture(scope="module")
def container(swift_service: SwiftService) -> str:
    name = f"segments-{uuid.uuid4().hex[:8]}"
    swift_service.create_container(name)
    return name


@pytest.fixture(scope="module")
def stored(swift_service: SwiftService, container: str) -> Iterator[bytes]:
    """A DLO of 26 segments at `reg/stored`, read by several tests."""
    data = os.urandom(SIZE)
    d = swift_service.driver(container, "reg", segment_size=SEGMENT)
    _write(d, "stored", data)
    yield data
    d.delete("stored")
    d.close()


@pytest.fixture
def faults(swift_service: SwiftService) -> Iterator[SwiftFaultProxy]:
    with SwiftFaultProxy(swift_service.auth_url) as proxy:
        yield proxy


@pytest.fixture
def driver(faults: SwiftFaultProxy, container: str) -> Iterator[SwiftDriver]:
    d = SwiftDriver(faults.credentials(), container, "reg", segment_size=SEGMENT)
    yield d
    d.close()


@pytest.fixture
def raw(swift_service: SwiftService) -> Iterator[Connection]:
    conn = Connection(swift_service.auth_url, swift_service.user, swift_service.key)
    yield conn
    conn.close()


def _write(driver: SwiftDriver, path: str, data: bytes) -> None:
    with driver.writer(path) as w:
        w.write(data)
        w.commit()


def _joined_gets(faults: SwiftFaultProxy, container: str, path: str) -> list[str]:
    """GETs of the object at `path` that Swift answered by joining its segments."""
    target = f"/{container}/reg/{path}"
    return [
        s
        for s in faults.seen
        if s.startswith("GET ")
        and unquote(s.split(" ", 1)[1]).split("?")[0].endswith(target)
        and "multipart-manifest=get" not in s
    ]


def _segment_gets(faults: SwiftFaultProxy) -> list[str]:
    return [s for s in faults.seen if s.startswith("GET ") and "/reg/segments/" in s]


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (0, None),
        (0, 1),
        (SEGMENT - 1, 2),  # across a segment boundary
        (1500, 10 * SEGMENT),
        (SIZE - 1, 100),  # past the end: cut short
        (SIZE - 500, None),  # the last, short segment
        (SIZE, None),  # at the end: empty
        (SIZE + 7, 3),
    ],
)
def test_a_dlo_is_read_by_its_segments(
    driver: SwiftDriver,
    faults: SwiftFaultProxy,
    container: str,
    stored: bytes,
    offset: int,
    length: int | None,
) -> None:
    with driver.open("stored", offset, length) as f:
        got = f.read()
    assert got == stored[offset : None if length is None else offset + length]
    assert _joined_gets(faults, container, "stored") == []
    if got:
        assert _segment_gets(faults)


def test_a_reader_closed_early_leaves_the_driver_reading_right(
    swift_service: SwiftService, container: str
) -> None:
    """Closing a reader drops the segments under way, mid-response (segments of several
    `READ`s); the connections the fetch threads keep serve the next readers."""
    driver = swift_service.driver(container, "reg", segment_size=2 * READ)
    data = os.urandom(3 * 2 * READ)
    _write(driver, "large", data)
    try:
        for _ in range(3):
            with driver.open("large", 5) as f:
                assert f.read(10) == data[5:15]
        with driver.open("large") as f:
            assert f.read() == data
    finally:
        driver.delete("large")
        driver.close()


def test_get_of_a_dlo_reads_its_segments_and_of_a_plain_object_one_request(
    driver: SwiftDriver, faults: SwiftFaultProxy, container: str, stored: bytes
) -> None:
    driver.put("small", b"plain")
    faults.seen.clear()
    assert driver.get("stored") == stored
    assert _joined_gets(faults, container, "stored") == []
    faults.seen.clear()
    assert driver.get("small") == b"plain"
    with driver.open("small", 1, 3) as f:
        assert f.read() == b"lai"
    assert len(faults.seen) == 2  # one GET each: no HEAD first
    driver.delete("small")


class Body(io.RawIOBase):
    """A response body of `data` whose reads wait, after `before` bytes, for `go`."""

    def __init__(self, data: bytes, go: threading.Event | None = None, before: int = 0):
        self._data, self._go, self._before = memoryview(data), go, before

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        if self._go is not None and self._before > 0:
            want = min(want, self._before)
        elif self._go is not None:
            self._go.wait(5)
        n = min(want, len(self._data))
        buffer[:n] = self._data[:n]
        self._data, self._before = self._data[n:], self._before - n
        return n


def _started(opened: list[Piece], fill: int = 0) -> Callable[[Piece], Fetch]:
    """Starts fetches at once, in this thread, from bodies of `fill` bytes (the piece's
    index + 1, by default); records the pieces in `opened`."""
    buffers = Buffers(keep=4)

    def start(piece: Piece) -> Fetch:
        opened.append(piece)
        fetch = Fetch(piece, buffers)
        byte = bytes([fill or len(opened)])
        fetch.run(lambda path, offset, length: Body(byte * length))
        return fetch

    return start


def test_pieces_are_fetched_several_at_a_time_in_bounded_number() -> None:
    """At most `ahead` pieces are requested ahead of the reader: memory stays bounded
    however large the object."""
    opened: list[Piece] = []
    todo = [Piece(f"s/{i:016d}", 0, 10) for i in range(AHEAD * 3)]
    reader = PieceReader("blob", todo, _started(opened))
    assert opened == todo[:AHEAD]
    buffer = bytearray(10)
    assert reader.readinto(buffer) == 10 and buffer == bytes([1]) * 10
    assert opened == todo[:AHEAD]  # the first piece is not taken whole yet
    assert reader.readinto(buffer) == 10 and buffer == bytes([2]) * 10
    assert opened == todo[: AHEAD + 1]
    reader.close()
    assert len(opened) == AHEAD + 1


def test_pieces_in_flight_stay_within_the_window_of_bytes() -> None:
    """Pieces as large as whole segments: as many in flight as the window holds (one at
    least, however large)."""
    opened: list[Piece] = []
    todo = [Piece(f"s/{i:016d}", 0, 20) for i in range(6)]
    with PieceReader("blob", todo, _started(opened), ahead=5, window=65) as reader:
        assert len(opened) == 3
        assert reader.read() == b"".join(bytes([i + 1]) * 20 for i in range(6))
    opened.clear()
    with PieceReader("blob", todo, _started(opened), ahead=5, window=10) as reader:
        assert len(opened) == 1
        assert reader.read(20) == bytes([1]) * 20


def test_a_distribution_sized_segment_is_read_with_two_requests() -> None:
    """Swift's cost is largely per request: a segment of distribution's default size (20
    MiB) is its first `FIRST` bytes (Swift's object server hashes a read from byte 0) and
    the rest; only a larger one is cut further."""
    mib = 1024 * 1024
    assert pieces([("a", 20 * mib), ("b", 20 * mib)], 0, None) == [
        Piece("a", 0, FIRST),
        Piece("a", FIRST, 20 * mib - FIRST),
        Piece("b", 0, FIRST),
        Piece("b", FIRST, 20 * mib - FIRST),
    ]
    assert len(pieces([("a", PIECE * 3)], 0, None)) == 4
    # a range from within a segment asks for no first piece of it
    assert pieces([("a", 20 * mib), ("b", FIRST)], mib, None) == [
        Piece("a", mib, 19 * mib),
        Piece("b", 0, FIRST),
    ]


def _taken(fetch: Fetch) -> bytes:
    """The next bytes `fetch` hands out; b"" at its end."""
    chunk = fetch.take()
    return b"" if chunk is None else bytes(chunk[0][: chunk[1]])


def test_a_piece_is_read_as_it_arrives() -> None:
    """The reader gets the first bytes of a piece before the rest has come: a segment is
    not waited for whole."""
    go = threading.Event()
    fetch = Fetch(Piece("s/1", 0, 3 * READ), Buffers(keep=4))
    data = os.urandom(3 * READ)
    thread = threading.Thread(target=fetch.run, args=(lambda *_: Body(data, go, READ),))
    thread.start()
    try:
        assert _taken(fetch) == data[:READ]  # while the rest waits for `go`
        assert not go.is_set()
    finally:
        go.set()
        thread.join(5)
    assert b"".join(iter(lambda: _taken(fetch), b"")) == data[READ:]


def test_the_buffers_read_are_used_again() -> None:
    """Each fetch reads into a buffer the reader gave back: no fresh memory per chunk."""
    made: set[int] = set()

    class Counted(Buffers):
        def get(self) -> bytearray:
            buffer = super().get()
            made.add(id(buffer))
            return buffer

    buffers = Counted(keep=4)

    def start(piece: Piece) -> Fetch:
        fetch = Fetch(piece, buffers)
        fetch.run(lambda *_: Body(b"x" * piece.length))
        return fetch

    todo = [Piece(f"s/{i}", 0, READ) for i in range(10)]
    with PieceReader("blob", todo, start, ahead=1) as reader:
        assert reader.read(20 * READ) == b"x" * READ  # one chunk a call (a raw reader)
        assert b"".join(iter(lambda: reader.read(READ), b"")) == b"x" * 9 * READ
    assert len(made) == 1


def test_a_piece_that_comes_short_is_a_transient_fault_after_its_bytes() -> None:
    fetch = Fetch(Piece("s/1", 0, 10), Buffers(keep=4))
    fetch.run(lambda *_: Body(b"12345"))
    assert _taken(fetch) == b"12345"
    with pytest.raises(TransientError, match="5 bytes where 10"):
        fetch.take()


def test_a_reader_does_not_wait_for_a_fetch_the_closed_driver_dropped(
    swift_service: SwiftService, container: str
) -> None:
    driver = swift_service.driver(container, "reg", segment_size=SEGMENT)
    go = threading.Event()
    reads = driver.segment_reads
    reads.objects = cast(Any, Opens(lambda *_: Body(b"x" * 10, go)))
    busy = [reads._start(Piece(f"s/{i}", 0, 10)) for i in range(THREADS)]
    queued = reads._start(Piece("s/queued", 0, 10))
    # Closing while every thread is busy: the queued fetch never runs (the close waits
    # for the busy ones, which wait for `go`).
    closing = threading.Thread(target=driver.close)
    closing.start()
    try:
        with pytest.raises(StorageError, match="closed"):
            queued.take()
    finally:
        go.set()
        closing.join(10)
    assert all(_taken(f) == b"x" * 10 for f in busy)


class Opens:
    """Stands in for a `Container` whose `open` returns `body(path, offset, length)`."""

    def __init__(self, body: Callable[[str, int, int], io.RawIOBase]):
        self._body = body

    def open(self, path: str, offset: int, length: int) -> io.RawIOBase:
        return self._body(path, offset, length)


def test_ranges_map_onto_segments_in_pieces() -> None:
    segments = [("a", 10), ("b", 10), ("c", 5)]
    assert pieces(segments, 0, None, piece=4) == [
        Piece("a", 0, 4),
        Piece("a", 4, 4),
        Piece("a", 8, 2),
        Piece("b", 0, 4),
        Piece("b", 4, 4),
        Piece("b", 8, 2),
        Piece("c", 0, 4),
        Piece("c", 4, 1),
    ]
    assert pieces(segments, 9, 3) == [Piece("a", 9, 1), Piece("b", 0, 2)]
    assert pieces(segments, 20, 100) == [Piece("c", 0, 5)]
    assert pieces(segments, 25, None) == []
    assert pieces([("a", 0), ("b", 3)], 0, None) == [Piece("b", 0, 3)]


def test_the_dlo_etag_is_swifts(driver: SwiftDriver, raw: Connection, container: str) -> None:
    _write(driver, "blob", os.urandom(3 * SEGMENT))
    segment_set = raw.head_object(container, "reg/blob")["x-object-manifest"].split("/", 1)[1]
    _, listing = raw.get_container(container, prefix=segment_set)
    head = raw.head_object(container, "reg/blob")
    assert dlo_etag([item["hash"] for item in listing]) == head["etag"].strip('"')
    driver.delete("blob")


def test_a_listing_that_disagrees_with_the_head_reads_through_swift(
    driver: SwiftDriver, faults: SwiftFaultProxy, container: str
) -> None:
    """A DLO being rewritten (or a lagging listing): the segments listed do not add up
    to what the HEAD says, so Swift joins them, as it would for any client."""
    data = os.urandom(5 * SEGMENT)  # few segments: the middleware's limit does not bite
    _write(driver, "blob", data)

    def bigger(response: tuple[int, dict[str, str], bytes]) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = response
        return status, {**headers, "Content-Length": str(len(data) + 1)}, body

    faults.edit("HEAD", rf"/{container}/reg/blob$", bigger)
    faults.seen.clear()
    assert driver.get("blob") == data
    assert len(_joined_gets(faults, container, "blob")) == 1
    driver.delete("blob")


def test_segments_that_cannot_be_listed_are_read_through_swift(
    driver: SwiftDriver, faults: SwiftFaultProxy, container: str
) -> None:
    data = os.urandom(5 * SEGMENT)
    _write(driver, "blob", data)
    faults.answer("GET", rf"/{container}\?.*prefix=reg(/|%2F)segments", 403)
    faults.seen.clear()
    with driver.open("blob", 10, 2000) as f:
        assert f.read() == data[10:2010]
    assert len(_joined_gets(faults, container, "blob")) == 1
    driver.delete("blob")


def test_segments_in_another_container_are_read_through_swift(
    swift_service: SwiftService, driver: SwiftDriver, raw: Connection, container: str
) -> None:
    elsewhere = f"{container}-segs"
    raw.put_container(elsewhere)
    raw.put_object(elsewhere, "parts/1", b"abc")
    raw.put_object(elsewhere, "parts/2", b"def")
    raw.put_object(
        container, "reg/joined", b"", headers={"X-Object-Manifest": f"{elsewhere}/parts/"}
    )
    assert driver.get("joined") == b"abcdef"
    with driver.open("joined", 2, 3) as f:
        assert f.read() == b"cde"
    driver.delete("joined")
    for name in ("parts/1", "parts/2"):
        raw.delete_object(elsewhere, name)
    raw.delete_container(elsewhere)


def test_a_segment_gone_while_read_is_a_transient_fault_and_a_retry_reads_on(
    driver: SwiftDriver, raw: Connection, container: str
) -> None:
    """The DLO is rewritten (same content, a new segment set; the old one deleted) while
    a reader is part-way: the bare driver raises a `TransientError`, the retry wrapper
    opens it again at the first byte not yet returned and the content comes out whole."""
    data = os.urandom(SIZE)
    _write(driver, "blob", data)
    segment_set = raw.head_object(container, "reg/blob")["x-object-manifest"].split("/", 1)[1]
    old = sorted(item["name"] for item in raw.get_container(container, prefix=segment_set)[1])
    retrying = RetryingDriver(driver)
    with driver.open("blob") as bare, retrying.open("blob") as resumed:
        assert bare.read(SEGMENT) == data[:SEGMENT]
        assert resumed.read(SEGMENT) == data[:SEGMENT]
        _write(driver, "blob", data)  # a new set; the old one is deleted
        with pytest.raises(ClientException):
            raw.head_object(container, old[-1])
        with pytest.raises(TransientError, match="vanished"):
            bare.read()
        assert resumed.read() == data[SEGMENT:]
    driver.delete("blob")
