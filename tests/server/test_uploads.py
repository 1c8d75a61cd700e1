"""Upload integrity: one request appends to an upload at a time, across server processes
sharing a store; the digest is checked over the bytes stored; a chunk whose length
disagrees with its Content-Range leaves the upload as it was.

Interleavings are made deterministic with an upload store that reports each lease it
takes (and each renewal) on a queue, and with a clock the test moves: no sleeps.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import queue
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from regtool.layout.v2 import V2Layout
from regtool.oci import Digest
from regtool.server.hash_states import new_hasher
from regtool.server.http import IO_CHUNK
from regtool.server.upload_store import UploadSession, UploadStore
from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from regtool.uploads.lease import LeaseTerms
from tests.server.conftest import RunningRegistry


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HookedUploads(UploadStore):
    """Puts ("open", upload id) on `events` once a request holds an upload's lease,
    ("renew", clock) after each renewal (stamped at that clock), and ("write", bytes)
    after each append."""

    def __init__(self, layout: V2Layout, **kwargs: Any):
        super().__init__(layout, **kwargs)
        self.events: queue.Queue[tuple[str, object]] = queue.Queue()

    def open(self, name: str, upload_id: str) -> UploadSession:
        session = super().open(name, upload_id)
        renew = session.renew

        def reported_renew() -> None:
            # reported only if the clock stood still throughout, so the time given is
            # the one the renewal stamped (a test moving the clock meanwhile waits for
            # the next renewal)
            before = self.lease_terms.clock()
            renew()
            if self.lease_terms.clock() == before:
                self.events.put(("renew", before))

        session.renew = reported_renew  # type: ignore[method-assign]
        write = session.write

        def reported_write(data: bytes) -> None:
            write(data)
            self.events.put(("write", len(data)))

        session.write = reported_write  # type: ignore[method-assign]
        self.events.put(("open", upload_id))
        return session

    def wait(self, kind: str) -> object:
        while True:
            event, value = self.events.get(timeout=30)
            if event == kind:
                return value


class FakeClock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class PartialPatch:
    """A PATCH on its own connection whose body the test sends in parts."""

    def __init__(self, registry: RunningRegistry, location: str, body: bytes, start: int):
        self.conn = http.client.HTTPConnection(registry.host, timeout=30)
        self.conn.putrequest("PATCH", location)
        self.conn.putheader("Content-Length", str(len(body)))
        self.conn.putheader("Content-Range", f"{start}-{start + len(body) - 1}")
        self.body = body

    def send_first(self, n: int) -> None:
        self.conn.endheaders(self.body[:n])
        self.sent = n

    def finish(self) -> tuple[int, dict[str, str]]:
        self.conn.send(self.body[self.sent :])
        resp = self.conn.getresponse()
        resp.read()
        self.conn.close()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}


def _upload_id(location: str) -> str:
    return location.rsplit("/", 1)[1]


def _local_pair(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Driver, Driver]:
    return LocalDriver(tmp_path / "store"), LocalDriver(tmp_path / "store")


def _swift_pair(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Driver, Driver]:
    service = request.getfixturevalue("swift_service")
    container = f"uploads-{uuid.uuid4().hex[:8]}"
    return (
        service.driver(container, segment_size=128),
        service.driver(container, segment_size=128),
    )


@pytest.fixture
def local(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> Iterator[tuple[RunningRegistry, HookedUploads]]:
    stores: list[HookedUploads] = []

    def make(layout: V2Layout) -> HookedUploads:
        stores.append(HookedUploads(layout))
        return stores[-1]

    reg = serve_registry(LocalDriver(tmp_path / "store"), tmp_path / "store", uploads=make)
    yield reg, stores[0]


def test_overlapping_patches_one_is_refused_at_once(
    local: tuple[RunningRegistry, HookedUploads],
) -> None:
    """Two PATCHes both claiming the upload's end: the second, arriving while the first
    streams, is refused at once (416 with the upload's Range), not queued; the blob then
    holds exactly the bytes its digest names."""
    reg, uploads = local
    a_body, b_body = b"A" * 20, b"B" * 10
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        location = client.post("/v2/race/app/blobs/uploads/").headers["Location"]
        assert client.patch(location, content=b"x", headers={"Content-Range": "0-0"}).status_code
        uploads.wait("open")
        a = PartialPatch(reg, location, a_body, start=1)
        a.send_first(10)
        assert uploads.wait("open") == _upload_id(location)  # A holds the lease

        r = client.patch(location, content=b_body, headers={"Content-Range": "1-10"})
        assert r.status_code == 416, r.text
        assert r.json()["errors"][0]["code"] == "RANGE_INVALID"
        assert r.headers["Range"] == "0-0"  # what the upload holds: A is not done
        assert r.headers["Location"] == location
        assert r.headers["Docker-Upload-UUID"] == _upload_id(location)
        r = client.put(location, params={"digest": sha(b"x" + b_body)})
        assert r.status_code == 416  # completing is appending's equal

        status, headers = a.finish()
        assert status == 202 and headers["range"] == "0-20"
        digest = sha(b"x" + a_body)
        r = client.put(location, params={"digest": digest})
        assert r.status_code == 201, r.text
        blob = client.get(f"/v2/race/app/blobs/{digest}").content
    assert blob == b"x" + a_body and sha(blob) == digest


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    return LocalDriver(tmp_path / "store")


def _swift(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    service = request.getfixturevalue("swift_service")
    return service.driver(f"uploads-{uuid.uuid4().hex[:8]}", segment_size=256 << 10)  # type: ignore[no-any-return]


@pytest.mark.parametrize("make", [_local, _swift], ids=["local", "swift"])
def test_busy_upload_reports_what_is_committed(
    make: Callable[[pytest.FixtureRequest, Path], Driver],
    request: pytest.FixtureRequest,
    serve_registry: Callable[..., RunningRegistry],
    tmp_path: Path,
) -> None:
    """While a request's bytes are stored but not committed (appended in place, or as
    segments), the upload's `Range` (a busy 416, a status) is what it held before."""
    stores: list[HookedUploads] = []

    def hooked(layout: V2Layout) -> HookedUploads:
        stores.append(HookedUploads(layout))
        return stores[-1]

    reg = serve_registry(make(request, tmp_path), uploads=hooked)
    first, streaming = b"x" * 100, os.urandom(IO_CHUNK + 10)
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        location = client.post("/v2/app/blobs/uploads/").headers["Location"]
        assert client.patch(location, content=first).status_code == 202
        a = PartialPatch(reg, location, streaming + b"tail", start=len(first))
        a.send_first(len(streaming))
        written = stores[0].wait("write")  # stored, not committed
        assert isinstance(written, int) and written >= IO_CHUNK
        upload_id = _upload_id(location)
        stored = reg.driver.stat(reg.layout.upload_data("app", upload_id)).size
        assert stored is not None and stored >= 100 + IO_CHUNK  # (Swift buffers a segment)

        r = client.patch(location, content=b"y", headers={"Content-Range": "100-100"})
        assert r.status_code == 416 and r.headers["Range"] == "0-99", r.headers
        assert client.get(location).headers["Range"] == "0-99"

        status, headers = a.finish()
        assert status == 202 and headers["range"] == f"0-{len(first) + len(streaming) + 3}"
        assert client.get(location).headers["Range"] == headers["range"]


@pytest.mark.parametrize("make", [_local_pair, _swift_pair], ids=["local", "swift"])
def test_two_servers_on_one_store_serialise_appends(
    make: Callable[[pytest.FixtureRequest, Path], tuple[Driver, Driver]],
    request: pytest.FixtureRequest,
    tmp_path: Path,
    serve_registry: Callable[..., RunningRegistry],
) -> None:
    """The lease lives in storage: a PATCH to a second server while the first streams a
    chunk into the same upload is refused; every byte of the blob matches its digest."""
    first_driver, second_driver = make(request, tmp_path)
    hooked: list[HookedUploads] = []

    def uploads(layout: V2Layout) -> HookedUploads:
        hooked.append(HookedUploads(layout))
        return hooked[-1]

    first = serve_registry(first_driver, uploads=uploads)
    second = serve_registry(second_driver)
    data = os.urandom(300)
    with (
        httpx.Client(base_url=first.url, timeout=30) as a,
        httpx.Client(base_url=second.url, timeout=30) as b,
    ):
        location = a.post("/v2/team/app/blobs/uploads/").headers["Location"]
        patch = PartialPatch(first, location, data[:200], start=0)
        patch.send_first(100)
        hooked[0].wait("open")
        r = b.patch(location, content=b"evil" * 50, headers={"Content-Range": "0-199"})
        assert r.status_code == 416 and r.headers["Range"] == "0-0"
        r = b.patch(location, content=b"evil")  # without Content-Range: the same
        assert r.status_code == 416
        status, headers = patch.finish()
        assert status == 202 and headers["range"] == "0-199"
        r = b.put(location, params={"digest": sha(data)}, content=data[200:])
        assert r.status_code == 201, r.text
        blob = a.get(f"/v2/team/app/blobs/{sha(data)}").content
    assert blob == data
    assert Digest.of(first_driver.get(first.layout.blob_data(Digest.parse(sha(data))))) == (
        Digest.parse(sha(data))
    )
    for d in (first_driver, second_driver):
        d.close()


def test_lease_held_elsewhere_refuses_and_an_expired_one_is_taken_over(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    """A lease another process holds refuses the request and leaves the upload alone; one
    whose holder crashed (expired) is taken over by the next generation, and the upload
    is then hashed again from storage, never from a remembered state."""
    clock = FakeClock()
    stores: list[UploadStore] = []

    def make(layout: V2Layout) -> UploadStore:
        stores.append(UploadStore(layout, lease_terms=LeaseTerms(ttl=60, clock=clock)))
        return stores[0]

    reg = serve_registry(LocalDriver(tmp_path / "store"), uploads=make)
    layout, driver = reg.layout, reg.driver
    data = b"0123456789"
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        location = client.post("/v2/a/blobs/uploads/").headers["Location"]
        upload_id = _upload_id(location)
        assert client.patch(location, content=data[:4]).status_code == 202
        lease = layout.upload_lease("a", upload_id)
        driver.put(lease, f"{'ab' * 16} {clock.now + 30:.3f}".encode())  # another holder

        r = client.patch(location, content=data[4:], headers={"Content-Range": "4-9"})
        assert r.status_code == 416 and r.headers["Range"] == "0-3"
        assert driver.get(layout.upload_data("a", upload_id)) == data[:4]

        clock.now += 31  # that holder crashed: its lease expired
        r = client.patch(location, content=data[4:], headers={"Content-Range": "4-9"})
        assert r.status_code == 202 and r.headers["Range"] == "0-9"
        assert driver.exists(lease)  # generation 0 stays: the upload is doubtful now
        assert not driver.exists(layout.upload_lease("a", upload_id, 1))  # released

        fingerprint = stores[0]._fingerprint("a", upload_id)
        assert fingerprint is not None
        wrong = new_hasher()
        wrong.update(b"something else")
        stores[0].hash_states.put(upload_id, fingerprint, wrong)  # must not be trusted
        r = client.put(location, params={"digest": sha(data)})
        assert r.status_code == 201, r.text


def test_digest_is_checked_over_the_bytes_stored(
    local: tuple[RunningRegistry, HookedUploads],
) -> None:
    """A remembered hash state describes the bytes a stat still matches: changed behind
    the server's back (same size), the upload is hashed again and the digest of what was
    sent no longer passes."""
    reg, _ = local
    sent, planted = b"A" * 100, b"B" * 100
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        location = client.post("/v2/a/blobs/uploads/").headers["Location"]
        assert client.patch(location, content=sent).status_code == 202
        path = reg.root / reg.layout.upload_data("a", _upload_id(location))  # type: ignore[operator]
        stat = path.stat()
        path.write_bytes(planted)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        r = client.put(location, params={"digest": sha(sent)})
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
        assert client.head(f"/v2/a/blobs/{sha(sent)}").status_code == 404
        assert not reg.driver.exists(reg.layout.blob_data(Digest.parse(sha(sent))))


def test_a_lease_lapses_without_renewal_and_its_holder_writes_nothing(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    """A holder whose lease was not renewed for half its life counts it lost: its bytes
    never reach the upload, which another request (after the whole life) took over."""
    clock = FakeClock()
    stores: list[HookedUploads] = []

    def make(layout: V2Layout) -> HookedUploads:
        stores.append(HookedUploads(layout, lease_terms=LeaseTerms(ttl=60, clock=clock)))
        return stores[0]

    reg = serve_registry(LocalDriver(tmp_path / "store"), uploads=make)
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        location = client.post("/v2/a/blobs/uploads/").headers["Location"]
        stalled = PartialPatch(reg, location, b"S" * 50, start=0)
        stalled.send_first(0)  # headers only: the first byte comes after the lapse
        stores[0].wait("open")
        clock.now += 61  # no renewal came (its process hung): expired for others
        r = client.patch(location, content=b"T" * 20, headers={"Content-Range": "0-19"})
        assert r.status_code == 202, r.text
        status, _ = stalled.finish()
        assert status == 416
        upload_id = _upload_id(location)
        assert reg.driver.get(reg.layout.upload_data("a", upload_id)) == b"T" * 20


def test_a_lease_is_renewed_while_its_request_streams(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    """A slow client keeps its lease: the request renews it while the body trickles in,
    so an hour of the clock later its bytes are still welcome."""
    clock = FakeClock()
    stores: list[HookedUploads] = []
    terms = LeaseTerms(ttl=60, clock=clock, renew_interval=0.01)

    def make(layout: V2Layout) -> HookedUploads:
        stores.append(HookedUploads(layout, lease_terms=terms))
        return stores[0]

    reg = serve_registry(LocalDriver(tmp_path / "store"), uploads=make)
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        location = client.post("/v2/a/blobs/uploads/").headers["Location"]
        slow = PartialPatch(reg, location, b"S" * 50, start=0)
        slow.send_first(10)
        store = stores[0]
        store.wait("open")
        for _ in range(120):  # an hour, in steps below half the lease's life
            clock.now += 29
            while store.wait("renew") != clock.now:  # type: ignore[comparison-overlap]
                pass
        r = client.patch(location, content=b"T", headers={"Content-Range": "0-0"})
        assert r.status_code == 416  # still held
        status, headers = slow.finish()
        assert status == 202 and headers["range"] == "0-49"


@pytest.mark.parametrize(
    ("headers", "body", "why"),
    [
        ({"Content-Range": "3-12", "Content-Length": "5"}, b"12345", "declared length"),
        ({"Content-Range": "3-12"}, iter([b"123", b"45"]), "a shorter chunked body"),
        ({"Content-Range": "3-4"}, iter([b"123", b"45"]), "a longer chunked body"),
    ],
)
def test_chunk_length_must_match_its_content_range(
    local: tuple[RunningRegistry, HookedUploads], headers: dict[str, str], body: Any, why: str
) -> None:
    """distribution refuses a chunk whose Content-Length disagrees with Content-Range
    (400 SIZE_INVALID); a chunked body of another length is refused as well. Either way
    the upload holds what it held, and continues."""
    reg, _ = local
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        location = client.post("/v2/a/blobs/uploads/").headers["Location"]
        assert client.patch(location, content=b"abc").status_code == 202
        r = client.patch(location, content=body, headers=headers)
        assert r.status_code == 400, why
        assert r.json()["errors"][0]["code"] == "SIZE_INVALID"
        assert client.get(location).headers["Range"] == "0-2"
        path = reg.layout.upload_data("a", _upload_id(location))
        assert reg.driver.get(path) == b"abc"
        r = client.put(location, params={"digest": sha(b"abcdef")}, content=b"def")
        assert r.status_code == 201, r.text
