"""A store moved away under a running UI is not shown as an empty one: the pages that
read it answer 503 "Cannot read storage", a verification of everything fails saying
why (never "ok"), and the failure is logged; once the store is back, so are the pages."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import httpx
import pytest

from regtool.layout.detect import default_layout
from regtool.server.settings import ServerSettings
from regtool.storage.local import LocalDriver
from regtool.ui.data import StoreView
from tests.ui.test_jobs import run_ui, until
from tests.v2store import write_image


def test_a_store_moved_away_fails_its_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "store"
    layout = default_layout(LocalDriver(root))
    write_image(layout, "pub", "latest")
    # a clock that stands still: every walk takes 0 s by it, so with ttl=0 every page finds
    # the kept walk due and renews it (in the background), however long a walk really took
    view = StoreView(layout, str(root), ttl=0, clock=lambda: 0.0)

    async def body(client: httpx.AsyncClient) -> None:
        page = (await client.get("/ui/")).text
        assert "1 repository" in page
        assert (await client.get("/ui/image", params={"name": "pub", "ref": "latest"})).is_success
        form = (await client.get("/ui/repository", params={"name": "pub"})).text
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        assert token is not None
        root.rename(tmp_path / "gone")

        started = await client.post("/ui/verify", data={"csrf": token[1], "all": "1"})
        assert started.status_code == 303
        failed = await until(client, "/ui/verify/status", "failed", all="1")
        assert "cannot read storage" in failed["error"], failed
        # the kept walk is due for renewal: not answered, the store being gone
        assert (await client.get("/ui/")).status_code == 503
        await asyncio.to_thread(view.wait_for_walk)  # the renewal, failed
        for path, query in (("/ui/", {}), ("/ui/image", {"name": "pub", "ref": "latest"})):
            r = await client.get(path, params=query)
            assert r.status_code == 503, (path, r.text[r.text.find("<main") :])
            assert "cannot read storage" in r.text
        r = await client.get("/ui/repository", params={"name": "pub"})
        assert r.status_code == 503

        await asyncio.to_thread(view.wait_for_walk)  # the renewals these pages began end
        (tmp_path / "gone").rename(root)  # back: the next walk ends the failure
        await client.get("/ui/")
        await asyncio.to_thread(view.wait_for_walk)
        assert "1 repository" in (await client.get("/ui/")).text

    with caplog.at_level(logging.INFO, logger="regtool"):
        try:
            run_ui(view, ServerSettings(), body)
        finally:
            view.close()
    logged = [r.getMessage() for r in caplog.records if "cannot read storage" in r.getMessage()]
    assert any(m.startswith("UI: verifying the whole store failed") for m in logged), logged
