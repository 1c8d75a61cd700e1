"""`regtool gc --uploads-older-than` takes each old upload's lease before deleting it, as
the server's purging does: an upload a server is still writing (its lease in force)
stays, however old its files look; released, the next gc deletes it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from regtool.gc import GcOptions, collect
from regtool.gc.sweep import purge_uploads
from regtool.layout.detect import default_layout
from regtool.layout.v2 import V2Layout
from regtool.server.upload_store import UploadStore
from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from regtool.uploads.lease import LeaseTerms
from tests.server.test_upload_purge import age_upload, exists


def _gc_options() -> GcOptions:
    return GcOptions(
        min_age=timedelta(0), uploads_older_than=timedelta(hours=1), settle=timedelta(0)
    )


def test_cli_gc_leaves_an_upload_a_server_holds(cli: Any, tmp_path: Path) -> None:
    layout = default_layout(LocalDriver(tmp_path))
    store = UploadStore(layout)  # the server's
    upload_id = store.start("team/app")
    idle = store.start("team/app")
    session = store.open("team/app", upload_id)  # a request writing to it
    args = ("gc", "-l", str(tmp_path), "--min-age", "0", "--settle", "0")
    try:
        session.write(b"some bytes")
        for u in (upload_id, idle):
            age_upload(tmp_path, layout, "team/app", u, hours=48)  # lease file too
        # the held one is not planned, a dry run shows it as the real run does
        for dry in (("--dry-run",), ()):
            doc = cli.json(*args, *dry, "--uploads-older-than", "24h")
            assert [o["name"] for o in doc["objects"] if o["kind"] == "upload"] == [idle]
            assert [w for w in doc["warnings"] if upload_id in w] == [
                f"upload {upload_id} of team/app: kept, a server is writing it"
                " (its lease is in force)"
            ]
        assert exists(layout, "team/app", upload_id)
        assert not exists(layout, "team/app", idle)
        session.finish()  # what it wrote stays the upload's
    finally:
        session.close()
    assert store.size("team/app", upload_id) == len(b"some bytes")
    age_upload(tmp_path, layout, "team/app", upload_id, hours=48)
    doc = cli.json(*args, "--uploads-older-than", "24h")
    assert [o["name"] for o in doc["objects"] if o["kind"] == "upload"] == [upload_id]
    assert not exists(layout, "team/app", upload_id)
    assert list(layout.driver.walk(layout.uploads_dir("team/app"))) == []


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    return LocalDriver(tmp_path)


def _swift(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    service = request.getfixturevalue("swift_service")
    driver: Driver = service.driver(f"gc-lease-{uuid.uuid4().hex[:8]}")
    return driver


@pytest.mark.parametrize("make", [_local, _swift], ids=["local", "swift"])
def test_gc_takes_the_lease_of_each_upload_it_deletes(
    make: Callable[[pytest.FixtureRequest, Path], Driver],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """Swift takes a lease differently (a create that two can both seem to win, read
    back): gc there leaves a held upload as on a directory."""
    driver = make(request, tmp_path)
    layout = default_layout(driver)
    assert isinstance(layout, V2Layout)
    store = UploadStore(layout)
    held, idle = store.start("team/app"), store.start("team/app")
    later = datetime.now(UTC) + timedelta(hours=3)  # every file is hours old then
    session = store.open("team/app", held)
    try:
        session.finish(b"x" * 100)
        result = collect(layout, "test", _gc_options(), now=later)
        assert result.ok and [i.name for i in result.items if i.kind == "upload"] == [idle]
        assert any(held in w and "lease is in force" in w for w in result.warnings)
        assert exists(layout, "team/app", held) and not exists(layout, "team/app", idle)
    finally:
        session.close()
    assert store.size("team/app", held) == 100  # nothing of it went
    result = collect(layout, "test", _gc_options(), now=later)
    assert result.ok and [i.name for i in result.items if i.kind == "upload"] == [held]
    assert list(driver.walk(layout.uploads_dir("team/app"))) == []
    driver.close()


def test_an_upload_leased_after_gc_planned_is_kept_by_the_sweep(tmp_path: Path) -> None:
    """Between the plan and the sweep a server may take an old upload up again: the
    sweep's purging then keeps it, names it, and counts it with what changed."""
    layout = default_layout(LocalDriver(tmp_path))
    assert isinstance(layout, V2Layout)
    store = UploadStore(layout)
    upload_id = store.start("team/app")
    later = datetime.now(UTC) + timedelta(hours=3)
    options = _gc_options()
    result = collect(layout, "test", replace(options, dry_run=True), now=later)
    assert [i.name for i in result.items if i.kind == "upload"] == [upload_id]
    session = store.open("team/app", upload_id)  # taken up after gc planned
    try:
        purge_uploads(layout, result, later - options.uploads_older_than, LeaseTerms())
    finally:
        session.close()
    assert [i.name for i in result.items if i.kind == "upload"] == []
    assert result.kept_changed == 1
    assert any(upload_id in w and "since gc planned" in w for w in result.warnings)
    assert exists(layout, "team/app", upload_id)


def test_a_lease_held_on_another_host_keeps_its_upload_until_it_expires(
    cli: Any, tmp_path: Path
) -> None:
    """Only a holder on this host's boot and pid namespace can be seen to be gone; one
    elsewhere (here: another boot id) is known by its lease's expiry alone."""
    layout = default_layout(LocalDriver(tmp_path))
    assert isinstance(layout, V2Layout)
    upload_id = UploadStore(layout).start("team/app")
    lease = tmp_path / layout.upload_lease("team/app", upload_id)
    elsewhere = f"{uuid.uuid4()}/4026531836/1/1"

    def write_lease(expires: float) -> None:
        lease.write_text(f"{uuid.uuid4().hex} {expires:.3f} 0 {elsewhere}")

    write_lease(time.time() + 120)
    args = ("gc", "-l", str(tmp_path), "--min-age", "0", "--settle", "0")
    doc = cli.json(*args, "--uploads-older-than", "0s")
    assert [o for o in doc["objects"] if o["kind"] == "upload"] == []
    assert exists(layout, "team/app", upload_id)
    write_lease(time.time() - 1)
    doc = cli.json(*args, "--uploads-older-than", "0s")
    assert [o["name"] for o in doc["objects"] if o["kind"] == "upload"] == [upload_id]
    assert not exists(layout, "team/app", upload_id)


def test_an_upload_too_young_for_min_age_is_counted_kept(cli: Any, tmp_path: Path) -> None:
    """Old enough for --uploads-older-than, not for --min-age: kept, and counted so."""
    layout = default_layout(LocalDriver(tmp_path))
    store = UploadStore(layout)
    upload_id = store.start("team/app")
    age_upload(tmp_path, layout, "team/app", upload_id, hours=2)
    args = ("gc", "--dry-run", "-l", str(tmp_path), "--uploads-older-than", "0s")
    held = cli.json(*args, "--min-age", "3h")
    assert [o for o in held["objects"] if o["kind"] == "upload"] == []
    assert held["totals"]["kept_young"] == 1
    doomed = cli.json(*args, "--min-age", "1h")
    assert [o["name"] for o in doomed["objects"] if o["kind"] == "upload"] == [upload_id]
    assert doomed["totals"]["kept_young"] == 0
