"""The gc command's exit codes, table output and partial failures."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from regtool.gc import GcOptions, collect
from regtool.layout.v2 import FILESYSTEM_ROOT, V2Layout
from regtool.storage.base import DeleteReport
from regtool.storage.local import LocalDriver
from tests.gc.scenario import build


def test_usage_errors_exit_2(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file").write_text("x")
    assert cli("gc", "-l", str(tmp_path / "junk"), "--dry-run").exit_code == 2
    assert cli("gc", "-l", str(tmp_path), "--min-age", "soon").exit_code == 2
    settle = cli("gc", "-l", str(tmp_path), "--settle", "-5s")
    assert settle.exit_code == 2 and "--settle" in settle.stderr
    assert "Traceback" not in settle.stderr


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
