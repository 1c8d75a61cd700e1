"""Pull records: `regtool serve` notes when each manifest was pulled (at most once an hour
per manifest per server), and `prune --keep-pulled-within` keeps what was pulled."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from regtool.layout.detect import default_layout
from regtool.layout.pulls import pull_record, read_pull_records, since_file, stamp
from regtool.oci import Digest
from regtool.server.pulls import PullRecorder
from regtool.storage.local import LocalDriver
from tests.retention.scenario import manifest_status
from tests.services.distribution import filesystem_storage
from tests.services.images import build_image, pull, push


def test_a_manifest_is_recorded_at_most_once_an_interval(tmp_path: Path) -> None:
    layout = default_layout(LocalDriver(tmp_path))
    now = [1000.0]
    recorder = PullRecorder(layout, interval=3600, clock=lambda: now[0])
    digest = Digest.of(b"manifest")

    def pulled() -> bool:
        task = recorder.pulled("app", digest)
        if task is not None:
            asyncio.run(task())
        return task is not None

    assert pulled()
    record = tmp_path / pull_record(layout, "app", digest)
    assert record.exists() and (tmp_path / since_file(layout)).exists()
    record.unlink()
    now[0] += 3599
    assert not pulled() and not record.exists()  # throttled: no write within the hour
    now[0] += 1
    assert pulled() and record.exists()
    assert recorder.writes == 2


def _wait_for(path: Path, deadline: float = 20.0) -> None:
    """The record is written after the response: wait for it (bounded)."""
    end = time.monotonic() + deadline
    while not path.exists():
        assert time.monotonic() < end, f"{path} never written"
        time.sleep(0.05)


def _backdate(path: Path, days: float) -> None:
    when = time.time() - days * 86400
    os.utime(path, (when, when))


def test_prune_keeps_the_recently_pulled_and_deletes_the_stale(
    cli: Any,
    image_tools: None,
    serve_registry: Any,
    make_distribution: Any,
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    root.mkdir()
    serve = serve_registry(LocalDriver(root), root)
    layout = serve.layout
    oci = tmp_path / "oci"
    digests = {t: push(build_image(oci, t, size=400), serve.host, "app", t) for t in "abc"}
    for tag in "abc":  # pushed long ago: push time decides nothing here
        _backdate(root / layout.tag_current_link("app", tag), 90)

    refused = cli("prune", "-l", str(root), "--keep-pulled-within", "30d")
    assert refused.exit_code == 2 and "has none" in refused.stderr

    for tag in "ab":
        pull(serve.host, "app", tag, tmp_path / "pulled" / tag)
    records = {t: root / pull_record(layout, "app", Digest.parse(digests[t])) for t in "ab"}
    for path in records.values():
        _wait_for(path)
    assert not (root / pull_record(layout, "app", Digest.parse(digests["c"]))).exists()

    # Records began just now: that c was never pulled within 30 days is unknown.
    plan = cli.json("prune", "-l", str(root), "--keep-pulled-within", "30d", "--dry-run")
    reasons = {t["tag"]: (t["keep"], t["reason"]) for t in plan["repositories"][0]["tags"]}
    assert reasons["a"] == (True, "pulled within 30d")
    assert reasons["c"][0] and reasons["c"][1].startswith("pull records began")

    # Records began long ago, and b was last pulled 60 days ago.
    (root / since_file(layout)).write_bytes(stamp(datetime.now(UTC) - timedelta(days=400)))
    _backdate(records["b"], 60)
    assert read_pull_records(layout) is not None
    done = cli.json("prune", "-l", str(root), "--keep-pulled-within", "30d")
    decided = {t["tag"]: (t["keep"], t["reason"]) for t in done["repositories"][0]["tags"]}
    assert decided == {
        "a": (True, "pulled within 30d"),
        "b": (False, "not pulled within 30d"),
        "c": (False, "not pulled within 30d"),
    }
    assert pull(serve.host, "app", "a", tmp_path / "again") == digests["a"]
    for tag in "bc":
        assert manifest_status(serve.host, "app", tag) == 404

    # The records are harmless to distribution: it serves the store and collects it.
    dist = make_distribution(filesystem_storage(root))
    assert pull(dist.host, "app", "a", tmp_path / "from-distribution") == digests["a"]
    dist.garbage_collect(dry_run=True)
    verify = cli("verify", "--all", "-l", str(root))
    assert verify.exit_code == 0, verify.stdout + verify.stderr
