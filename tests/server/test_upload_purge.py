"""Upload purging in the server: uploads older than `age` go on the interval, younger
ones and those a request holds stay, two purges at once on one store do no harm."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from regtool.layout.detect import default_layout
from regtool.layout.v2 import V2Layout
from regtool.server.operations import Operations
from regtool.server.ops_settings import (
    DebugSettings,
    HealthSettings,
    NotificationSettings,
    UploadPurgeSettings,
)
from regtool.server.purge import UploadPurger
from regtool.server.upload_store import UploadStore
from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry

HOUR = 3600.0


def start_upload(client: httpx.Client, name: str, data: bytes = b"abc") -> str:
    """An upload left open with `data` in it; returns its id."""
    r = client.post(f"/v2/{name}/blobs/uploads/")
    assert r.status_code == 202
    location = r.headers["Location"]
    assert client.patch(location, content=data).status_code == 202
    return location.rsplit("/", 1)[-1]


def age_upload(root: Path, layout: V2Layout, name: str, upload_id: str, hours: float) -> None:
    """Make every file of a local upload (and its `startedat`) `hours` old."""
    then = datetime.now(UTC) - timedelta(hours=hours)
    started = root / layout.upload_started_at(name, upload_id)
    started.write_bytes(then.strftime("%Y-%m-%dT%H:%M:%SZ").encode())
    for path in (root / layout.upload_dir(name, upload_id)).rglob("*"):
        os.utime(path, (then.timestamp(), then.timestamp()))


def exists(layout: V2Layout, name: str, upload_id: str) -> bool:
    return layout.driver.exists(layout.upload_started_at(name, upload_id))


def test_old_uploads_vanish_on_the_interval_younger_ones_stay(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    purging = UploadPurgeSettings(True, age=2 * HOUR, interval=0.05, first_delay=0)
    ops = Operations.from_settings(
        DebugSettings(None, prometheus=True), HealthSettings(), NotificationSettings(), purging
    )
    reg = serve_registry(LocalDriver(tmp_path))
    layout = reg.layout
    with httpx.Client(base_url=reg.url) as client:
        old = [start_upload(client, "team/app") for _ in range(2)]
        old.append(start_upload(client, "first-push-only"))  # a directory without manifests
        young = start_upload(client, "team/app")
        fresh = start_upload(client, "team/app")
    for name, upload_id in [
        ("team/app", old[0]),
        ("team/app", old[1]),
        ("first-push-only", old[2]),
    ]:
        age_upload(tmp_path, layout, name, upload_id, hours=3)
    age_upload(tmp_path, layout, "team/app", young, hours=1)
    reg.stop()
    serve_registry(LocalDriver(tmp_path), ops=ops)  # its purger starts with it
    assert ops.metrics is not None
    registry = ops.metrics.registry
    deadline = time.monotonic() + 10
    while not registry.get_sample_value("regtool_upload_purge_runs_total", {"outcome": "ok"}):
        assert time.monotonic() < deadline, "no purge ran"
        time.sleep(0.02)
    assert not exists(layout, "team/app", old[1])
    assert not (tmp_path / layout.upload_dir("team/app", old[0])).exists()
    assert exists(layout, "team/app", young)
    assert exists(layout, "team/app", fresh)
    assert registry.get_sample_value("regtool_upload_purge_deleted_total") == 3


def test_dry_run_deletes_nothing(tmp_path: Path) -> None:
    layout = default_layout(LocalDriver(tmp_path))
    store = UploadStore(layout)
    upload_id = store.start("app")
    age_upload(tmp_path, layout, "app", upload_id, hours=200)
    run = UploadPurger(store, UploadPurgeSettings(dry_run=True)).run_once()
    assert [u.upload_id for u in run.old] == [upload_id] and run.deleted == []
    assert exists(layout, "app", upload_id)
    run = UploadPurger(store, UploadPurgeSettings()).run_once()  # 168h by default
    assert run.deleted == [("app", upload_id)]


def test_an_upload_whose_lease_is_held_stays(tmp_path: Path) -> None:
    layout = default_layout(LocalDriver(tmp_path))
    store = UploadStore(layout)
    upload_id = store.start("app")
    session = store.open("app", upload_id)  # a request writing to it
    try:
        session.write(b"some bytes")
        age_upload(tmp_path, layout, "app", upload_id, hours=3)  # its lease file too
        run = UploadPurger(store, UploadPurgeSettings(age=HOUR)).run_once()
        assert len(run.old) == 1 and run.deleted == []
        assert exists(layout, "app", upload_id)
    finally:
        session.close()
    age_upload(tmp_path, layout, "app", upload_id, hours=3)
    run = UploadPurger(store, UploadPurgeSettings(age=HOUR)).run_once()
    assert run.deleted == [("app", upload_id)]


def test_an_upload_written_after_it_was_found_stays(tmp_path: Path) -> None:
    layout = default_layout(LocalDriver(tmp_path))
    store = UploadStore(layout)
    upload_id = store.start("app")
    age_upload(tmp_path, layout, "app", upload_id, hours=3)

    def write_meanwhile() -> None:
        session = store.open("app", upload_id)
        session.finish(b"late bytes")
        session.close()

    purger = UploadPurger(store, UploadPurgeSettings(age=HOUR), after_find=write_meanwhile)
    run = purger.run_once()
    assert len(run.old) == 1 and run.deleted == []
    assert store.size("app", upload_id) == len(b"late bytes")


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Driver, Driver]:
    return LocalDriver(tmp_path), LocalDriver(tmp_path)


def _swift(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Driver, Driver]:
    service = request.getfixturevalue("swift_service")
    container = f"purge-{uuid.uuid4().hex[:8]}"
    return service.driver(container), service.driver(container)


@pytest.mark.parametrize("make", [_local, _swift], ids=["local", "swift"])
def test_two_purges_at_once_do_no_harm(
    make: Callable[[pytest.FixtureRequest, Path], tuple[Driver, Driver]],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """Two servers' purgers on one store: the second runs whole between the first's
    finding and its deleting; each upload goes once, nothing fails, nothing is left."""
    first, second = (UploadStore(default_layout(d)) for d in make(request, tmp_path))
    ids = [first.start("team/app") for _ in range(3)]
    for upload_id in ids:
        session = first.open("team/app", upload_id)
        session.finish(b"x" * 100)
        session.close()
    later = datetime.now(UTC) + timedelta(hours=2)  # every upload is an hour old then
    settings = UploadPurgeSettings(age=HOUR)
    inner = UploadPurger(second, settings)
    inner_runs = []
    outer = UploadPurger(
        first, settings, after_find=lambda: inner_runs.append(inner.run_once(later))
    )
    run = outer.run_once(later)
    assert len(run.old) == 3
    assert sorted(u for _, u in inner_runs[0].deleted) == sorted(ids)
    assert run.deleted == []  # found gone, or its lease taken: left alone
    layout = first.layout
    assert list(layout.driver.walk(layout.uploads_dir("team/app"))) == []
    for store in (first, second):
        store.driver.close()
