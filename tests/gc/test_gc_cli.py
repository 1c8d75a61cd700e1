"""The gc command's exit codes, table output and partial failures."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from regtool.gc import GcOptions, collect
from regtool.layout.v2 import FILESYSTEM_ROOT, V2Layout
from regtool.location import Location
from regtool.storage.base import DeleteReport
from regtool.storage.local import LocalDriver
from regtool.storage.retry import Backoff, RetryingDriver
from tests.gc.scenario import build
from tests.handstore import HandStore


def test_usage_errors_exit_2(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file").write_text("x")
    assert cli("gc", "-l", str(tmp_path / "junk"), "--dry-run").exit_code == 2
    assert cli("gc", "-l", str(tmp_path), "--min-age", "soon").exit_code == 2
    settle = cli("gc", "-l", str(tmp_path), "--settle", "-5s")
    assert settle.exit_code == 2 and "--settle" in settle.stderr
    assert "Traceback" not in settle.stderr


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--min-age", "99999999d"),
        ("--settle", "100000000000000000000h"),
        ("--uploads-older-than", "1" + "0" * 400 + "s"),  # past a float: infinity
    ],
)
def test_durations_past_100_years_are_usage_errors(
    cli: Any, tmp_path: Path, option: str, value: str
) -> None:
    HandStore(tmp_path).image("app", "1")
    result = cli("gc", "--dry-run", option, value, "-l", str(tmp_path))
    assert result.exit_code == 2, result.stdout + result.stderr
    assert option in result.stderr and "longer than 36500d" in result.stderr
    assert "Traceback" not in result.stderr and "Overflow" not in result.stderr


def test_table_output(cli: Any, image_tools: None, distribution_fs: Any, tmp_path: Path) -> None:
    build(distribution_fs.host, tmp_path / "oci")
    result = cli("gc", "-l", str(distribution_fs.root), "--min-age", "0", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "would delete" in result.stdout and "would free" in result.stdout
    assert "blobs marked" in result.stdout


class _FailingLinks(LocalDriver):
    """Refuses to delete `_layers` links."""

    def delete_many(self, paths: Iterable[str]) -> DeleteReport:
        paths = list(paths)
        report = super().delete_many(p for p in paths if "/_layers/" not in p)
        report.failed.update({p: "refused" for p in paths if "/_layers/" in p})
        return report


def test_partial_failure_keeps_blobs_whose_links_stay(
    cli: Any, image_tools: None, distribution_fs: Any, tmp_path: Path
) -> None:
    s = build(distribution_fs.host, tmp_path / "oci")
    layout = V2Layout(_FailingLinks(distribution_fs.root), FILESYSTEM_ROOT)
    result = collect(layout, "test", GcOptions(min_age=timedelta(0), settle=timedelta(0)))
    assert not result.ok
    stuck = {i.name for i in result.items if i.kind == "layer-link"}
    assert stuck  # a3's layers were linked in app
    for item in result.items:
        if item.kind in ("blob", "manifest"):
            assert result.done(item) == (item.name not in stuck)
            assert (distribution_fs.root / item.paths[0]).exists() == (item.name in stuck)
    assert {i.name for i in result.items if result.done(i)} >= s.orphaned - stuck
    # A later run with a working driver finishes the job.
    doc = cli.json("gc", "-l", str(distribution_fs.root), "--min-age", "0", "--settle", "0")
    assert stuck <= {o["name"] for o in doc["objects"] if o["deleted"]}


class _RefusingBlobs(LocalDriver):
    """Refuses to delete blob data."""

    def delete_many(self, paths: Iterable[str]) -> DeleteReport:
        paths = list(paths)
        report = super().delete_many(p for p in paths if "/blobs/" not in p)
        report.failed.update({p: "refused" for p in paths if "/blobs/" in p})
        return report


def test_the_summary_counts_what_was_deleted_and_what_failed(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HandStore(tmp_path)
    store.image("app", "1")
    stray = store.blob("app", b"garbage")
    monkeypatch.setattr(
        Location,
        "open",
        lambda loc: RetryingDriver(_RefusingBlobs(Path(loc.path)), Backoff(delay=0)),
    )
    args = ("gc", "-l", str(tmp_path), "--min-age", "0", "--settle", "0")
    dry = cli(*args, "--dry-run")
    assert dry.exit_code == 0
    assert "3 blobs marked (1 manifest read); eligible: 1 _layers link, 1 blob; would free 7 B" in (
        dry.stdout
    )
    result = cli(*args)
    assert result.exit_code == 1
    assert "deleted: 1 _layers link; NOT deleted: 1 blob; freed 0 B" in result.stdout
    assert result.stderr.startswith("1 path NOT deleted (everything else listed was):\n")
    doc = json.loads(cli(*args, "--json").stdout)  # the link is gone; the blob is left
    assert doc["totals"]["blob"] == 1 and doc["totals"]["deleted"]["blob"] == 0
    assert doc["totals"]["items_failed"] == 1 and doc["totals"]["failed"] == 1
    assert doc["failed"] == {store.layout.blob_data(stray): "refused"}


def test_the_footer_has_words_for_every_kind() -> None:
    from regtool.cli.gc import _KIND_WORDS
    from regtool.gc.model import KINDS

    assert set(_KIND_WORDS) == set(KINDS)
