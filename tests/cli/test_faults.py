"""Faults are not findings: a storage fault that outlasts the retries is an access error
(exit 2) naming its cause, never `corrupt`, `missing`, a `?` or a warning. ls and gc
stop at it; verify marks what it could not read `error` and finishes the rest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from regtool.errors import Unreachable
from regtool.storage.local import LocalDriver
from tests.faults import Fault, use_faulty_storage
from tests.handstore import HandStore
from tests.v1store import V1Store


def one_error_line(result: Any, *words: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return str(lines[0])


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def store(tmp_path: Path) -> HandStore:
    store = HandStore(tmp_path)
    store.image("app", "1", layers=2)
    store.image("other", "1")
    return store


def test_ls_stops_at_a_manifest_it_cannot_read(cli: Any, store: HandStore, monkeypatch) -> None:
    use_faulty_storage(monkeypatch, Fault("get", "/blobs/"))
    result = cli("ls", str(store.driver.root))
    one_error_line(result, "timed out reading docker/registry/v2/blobs/")
    assert result.stdout == ""  # no table of half-known tags


def test_ls_stops_at_a_tag_link_it_cannot_read(cli: Any, store: HandStore, monkeypatch) -> None:
    store.image("app", "1")  # re-pointed: its link must be read
    use_faulty_storage(monkeypatch, Fault("get", "/current/link"))
    one_error_line(cli("ls", str(store.driver.root)), "tags/1/current/link")


def test_ls_v1_stops_at_a_tag_file(cli: Any, tmp_path: Path, monkeypatch) -> None:
    v1 = V1Store(LocalDriver(tmp_path))
    v1.tag("app", "1.0", v1.add_chain(2))
    use_faulty_storage(monkeypatch, Fault("get", "/tag_1.0"))
    one_error_line(cli("ls", str(tmp_path)), "tag_1.0")


def test_verify_finishes_and_marks_an_unreadable_layer(
    cli: Any, store: HandStore, monkeypatch
) -> None:
    app = store.image("app", "2", layers=1, size=10_000)  # a layer read in several chunks
    use_faulty_storage(monkeypatch, Fault("read", app.layers[0].hex))
    result = cli("verify", "--all", "-l", str(store.driver.root), "--json")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: 1 object could not be read (status error above): the check is incomplete\n"
    )
    doc = json.loads(result.stdout)
    rows = {(r["repository"], r["tag"]): r for r in doc["results"]}
    assert rows[("app", "2")]["status"] == "error"
    (problem,) = rows[("app", "2")]["problems"]
    assert problem["kind"] == "unreadable" and problem["object"] == str(app.layers[0])
    assert (
        f"storage failed: local: timed out reading {store.layout.blob_data(app.layers[0])}"
        in (problem["detail"])
    )
    assert {r["status"] for k, r in rows.items() if k != ("app", "2")} == {"ok"}
    assert doc["totals"]["error"] == 1 and doc["totals"]["problems"] == 0
    assert doc["totals"]["unreadable"] == 1


def test_verify_table_and_damage_found_too(cli: Any, store: HandStore, monkeypatch) -> None:
    broken = store.image("broken", "1")
    store.path(store.layout.blob_data(broken.layers[0])).write_bytes(b"rot")
    app = store.image("app", "2", size=10_000)
    use_faulty_storage(monkeypatch, Fault("read", app.layers[0].hex))
    result = cli("verify", "--all", "-l", str(store.driver.root))
    assert result.exit_code == 2  # incomplete wins over damage: both are shown
    assert "error " in result.stdout and "corrupt " in result.stdout
    assert "1 problem; 1 object unreadable" in result.stdout


def test_verify_stops_when_storage_is_gone(cli: Any, store: HandStore, monkeypatch) -> None:
    gone = Fault("get", "/blobs/", lambda p: Unreachable("cannot reach the store", driver="sftp"))
    use_faulty_storage(monkeypatch, gone)
    result = cli("verify", "--all", "-l", str(store.driver.root))
    one_error_line(result, "sftp: cannot reach the store")
    assert result.stdout == ""


def test_verify_v1_marks_an_unreadable_layer(cli: Any, tmp_path: Path, monkeypatch) -> None:
    v1 = V1Store(LocalDriver(tmp_path))
    image = v1.add_chain(2, size=20_000)
    v1.tag("app", "1.0", image)
    use_faulty_storage(monkeypatch, Fault("read", f"images/{image.image_id}/layer"))
    result = cli("verify", "app:1.0", "-l", str(tmp_path), "--json")
    assert result.exit_code == 2
    (row,) = json.loads(result.stdout)["results"]
    assert row["status"] == "error"
    assert [(p["object"], p["kind"]) for p in row["problems"]] == [(image.image_id, "unreadable")]


def test_gc_stops_before_deleting(cli: Any, store: HandStore, monkeypatch) -> None:
    store.blob("app", b"garbage: no manifest references it")
    before = snapshot(store.driver.root)
    use_faulty_storage(monkeypatch, Fault("get", "/blobs/", after=1))
    result = cli("gc", "-l", str(store.driver.root), "--min-age", "0", "--settle", "0")
    one_error_line(result, "timed out reading", "gc stopped, nothing was deleted")
    assert snapshot(store.driver.root) == before


def test_gc_stops_at_an_unreadable_tag_link(cli: Any, store: HandStore, monkeypatch) -> None:
    store.image("app", "1")  # re-pointed: its link must be read
    store.blob("app", b"garbage: no manifest references it")
    before = snapshot(store.driver.root)
    use_faulty_storage(monkeypatch, Fault("get", "/current/link"))
    result = cli("gc", "-l", str(store.driver.root), "--min-age", "0", "--settle", "0")
    one_error_line(result, "current/link", "nothing was deleted")
    assert snapshot(store.driver.root) == before


def test_gc_after_deleting_links_deletes_no_blob_data(
    cli: Any, store: HandStore, monkeypatch
) -> None:
    stray = store.blob("app", b"garbage: no manifest references it")
    # walks of repositories/: the mark, the re-check before deleting, the one after
    use_faulty_storage(monkeypatch, Fault("walk", "/repositories", after=2))
    result = cli("gc", "-l", str(store.driver.root), "--min-age", "0", "--settle", "0", "--json")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: the re-check after deleting links failed: ")
    assert "no blob data was deleted, run it again" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["fault"].startswith("the re-check after deleting links failed")
    done = {(o["kind"], o["deleted"]) for o in doc["objects"]}
    assert done == {("layer-link", True), ("blob", False)}
    assert store.path(store.layout.blob_data(stray)).exists()
    assert not store.path(store.layout.layer_link("app", stray)).exists()
