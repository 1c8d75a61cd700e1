"""`--read-only` and `--no-delete`: every write (or delete) route answers 405
UNSUPPORTED saying why, reads work, and the store is byte for byte what it was."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from regtool.server.settings import ServerSettings
from regtool.storage.local import LocalDriver
from tests.server.conftest import RunningRegistry
from tests.server.routes import ROUTES, seed

NAME = "team/app"


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("settings", "refused", "why"),
    [
        (ServerSettings(read_only=True), {"push", "delete"}, "read-only"),
        (ServerSettings(delete_enabled=False), {"delete"}, "deletes are disabled"),
    ],
    ids=["read-only", "no-delete"],
)
def test_writes_refused_reads_served_store_unchanged(
    serve_registry: Callable[..., RunningRegistry],
    tmp_path: Path,
    settings: ServerSettings,
    refused: set[str],
    why: str,
) -> None:
    root = tmp_path / "store"
    root.mkdir()
    writable = serve_registry(LocalDriver(root), root)
    with httpx.Client(base_url=writable.url) as c:
        seeded = seed(c, [NAME])[NAME]
    writable.stop()
    before = snapshot(root)
    reg = serve_registry(LocalDriver(root), root, settings=settings)
    with httpx.Client(base_url=reg.url) as c:
        for route in ROUTES:
            if not route.needs & refused:
                continue
            r = route.call(c, NAME, seeded)
            assert r.status_code == 405, (route.id, r.text)
            if r.request.method != "HEAD":
                error = r.json()["errors"][0]
                assert error["code"] == "UNSUPPORTED" and why in error["message"], route.id
            assert r.request.method not in r.headers["Allow"]
        assert snapshot(root) == before
        for route in ROUTES:  # the rest works, each write on a repository of its own
            if route.needs & refused:
                continue
            name, fresh = NAME, seeded
            if "push" in route.needs:
                name = f"{NAME}-{route.id}"
                fresh = seed(c, [name])[name]
            assert route.call(c, name, fresh).status_code == route.ok, route.id


def test_a_read_only_server_records_no_pulls(
    serve_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    """Pull records are writes: a read-only server (a replica on a read-only mount, a
    store under maintenance) leaves the store exactly as it was, as distribution's does."""
    root = tmp_path / "store"
    root.mkdir()
    writable = serve_registry(LocalDriver(root), root)
    with httpx.Client(base_url=writable.url) as c:
        seed(c, [NAME])
    writable.stop()
    before = snapshot(root)
    for settings, records in ((ServerSettings(read_only=True), False), (ServerSettings(), True)):
        reg = serve_registry(LocalDriver(root), root, settings=settings)
        with httpx.Client(base_url=reg.url) as c:
            assert c.get(f"/v2/{NAME}/manifests/v1").status_code == 200
            # One connection answers in turn: the pull's after-response write (if any)
            # is done once the next answer comes.
            assert c.get("/v2/").status_code == 200
        reg.stop()
        assert any(path.startswith("regtool/pulls/") for path in snapshot(root)) == records
        if not records:
            assert snapshot(root) == before
