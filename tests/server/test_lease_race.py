"""Swift has no atomic create: two requests may both be granted an upload's lease. The
loser finds out at its next lease check and takes away what it wrote, segments named
with its own token, so that nothing of it stays in the winner's upload or in the blob
the winner completed (a large object on the same segment set).

The interleaving is fixed by hooks: the loser's server stops once its writer is open,
the winner completes the upload meanwhile, then the loser writes and checks."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from regtool.layout.v2 import V2Layout
from regtool.oci import Digest
from regtool.server.upload_store import Appender, UploadSession, UploadStore
from regtool.uploads.lease import LeaseTerms
from tests.server.conftest import RunningRegistry
from tests.server.test_uploads import PartialPatch

pytestmark = pytest.mark.swift

SEGMENT = 128


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class PausingUploads(UploadStore):
    """Sets `opened` once a request's writer is open on the upload, then waits for `go`
    before the request writes a byte."""

    def __init__(self, layout: V2Layout, **kwargs: Any):
        super().__init__(layout, **kwargs)
        self.opened = threading.Event()
        self.go = threading.Event()

    def open(self, name: str, upload_id: str) -> UploadSession:
        session = super().open(name, upload_id)
        open_appender = session._open_appender

        def paused() -> Appender:
            appender = open_appender()
            self.opened.set()
            assert self.go.wait(30), "the test never let the request go on"
            return appender

        session._open_appender = paused  # type: ignore[method-assign]
        return session


def test_a_lease_race_loser_takes_its_segments_away(
    swift_service: Any, serve_registry: Callable[..., RunningRegistry]
) -> None:
    container = f"race-{uuid.uuid4().hex[:8]}"
    stores: list[PausingUploads] = []

    def pausing(layout: V2Layout) -> PausingUploads:
        # Reads its lease back only before committing: every segment it writes lands.
        stores.append(PausingUploads(layout, lease_terms=LeaseTerms(check_every=1e9)))
        return stores[-1]

    loser = serve_registry(swift_service.driver(container, segment_size=SEGMENT), uploads=pausing)
    winner = serve_registry(swift_service.driver(container, segment_size=SEGMENT))
    first, late = os.urandom(3 * SEGMENT - 40), os.urandom(2 * SEGMENT)
    digest = Digest.parse(sha(first))
    with httpx.Client(base_url=winner.url, timeout=30) as client:
        location = client.post("/v2/app/blobs/uploads/").headers["Location"]
        assert client.patch(location, content=first).status_code == 202
        upload_id = location.rsplit("/", 1)[1]
        large = winner.driver.large_object(winner.layout.upload_data("app", upload_id))
        assert large is not None and large.segment_set is not None
        segments = sorted(e.path for e in winner.driver.walk(large.segment_set))

        patch = PartialPatch(loser, location, late, start=len(first))
        patch.send_first(len(late))
        assert stores[0].opened.wait(30)  # the loser holds the lease, its writer open
        # The race: the winner's create of the lease lands as well (the loser's goes).
        winner.driver.delete(winner.layout.upload_lease("app", upload_id))
        r = client.put(location, params={"digest": str(digest)})
        assert r.status_code == 201, r.text

        stores[0].go.set()  # the loser writes a segment into the set, then checks
        status, _ = patch.finish()
        assert status == 416
        assert client.get(f"/v2/app/blobs/{digest}").content == first
        assert client.head(f"/v2/app/blobs/{digest}").headers["Content-Length"] == str(len(first))
    assert sorted(e.path for e in winner.driver.walk(large.segment_set)) == segments
    for reg in (loser, winner):
        reg.driver.close()
