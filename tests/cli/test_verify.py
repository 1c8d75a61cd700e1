"""`regtool verify`: exit codes, the `--json` shape and the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regtool.oci import Digest
from regtool.storage.local import LocalDriver
from tests.inspect.pushed_store import PushedStore, pushed_store
from tests.v1store import V1Store


@pytest.fixture
def store(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> PushedStore:
    return pushed_store(tmp_path_factory).copy(tmp_path / "store")


def test_clean_store_exits_0(cli, store: PushedStore) -> None:
    result = cli("verify", "--all", "-l", str(store.root), "--jobs", "4")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "STATUS", "OBJECT", "PROBLEM"]
    assert lines[1].split()[:3] == ["mirror/app", "1.0", "ok"]
    assert "5 results (5 ok)" in result.stdout
    assert "no problems" in result.stdout
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_json_shape_and_exit_1(cli, store: PushedStore) -> None:
    layer = store.images["solo:1"].layers[0]  # type: ignore[union-attr]
    path = store.path(store.layout.blob_data(Digest.parse(layer.digest)))
    path.write_bytes(path.read_bytes()[:-10])
    result = cli("verify", "-l", str(store.root), "--all", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["location"] == str(store.root) and doc["layout"] == "v2"
    rows = {(r["repository"], r["tag"]): r for r in doc["results"]}
    assert set(rows[("solo", "1")]) == {"repository", "tag", "digest", "status", "problems"}
    assert rows[("solo", "1")]["status"] == "corrupt"
    assert rows[("solo", "1")]["problems"] == [
        {
            "object": layer.digest,
            "kind": "size",
            "detail": f"blob {layer.digest[:19]}… has {layer.size - 10} bytes, "
            f"manifest says {layer.size}",
        }
    ]
    assert rows[("multi", "latest")] == {
        "repository": "multi",
        "tag": "latest",
        "digest": store.digests["multi:latest"],
        "status": "ok",
        "problems": [],
    }
    totals = doc["totals"]
    assert totals["results"] == 5 and totals["ok"] == 4 and totals["corrupt"] == 1
    assert totals["problems"] == 1 and totals["blobs"] == 15 and totals["images"] == 6
    assert totals["bytes_hashed"] > 0 and totals["seconds"] >= 0


def test_table_lists_each_problem(cli, store: PushedStore) -> None:
    app = store.images["team/app:1.0"]
    for blob in app.layers:  # type: ignore[union-attr]
        store.path(store.layout.layer_link("team/app", Digest.parse(blob.digest))).unlink()
    result = cli("verify", "-l", str(store.root), "team/app:1.0")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[1].split()[:4] == ["team/app", "1.0", "missing", app.layers[0].digest[:19] + "…"]
    assert lines[2].split()[0] == "missing"  # the second problem, same tag
    assert "not linked into team/app" in lines[2]
    assert "2 problems" in result.stdout


def test_usage_and_access_errors_exit_2(cli, store: PushedStore, tmp_path: Path) -> None:
    (tmp_path / "not-a-registry").mkdir()
    (tmp_path / "not-a-registry" / "notes.txt").write_text("hello")
    for args, message in (
        (["verify", "-l", str(store.root)], "nothing to verify"),
        (["verify", "-l", str(store.root), "--all", "solo:1"], "not both"),
        (["verify", "-l", str(store.root), "solo:nosuchtag"], "tag solo:nosuchtag not found"),
        (["verify", "-l", str(store.root), "nosuch/repo"], "repository nosuch/repo not found"),
        (["verify", "-l", str(store.root), "Bad:Name"], "invalid repository name"),
        (["verify", "-l", str(tmp_path / "not-a-registry"), "--all"], "holds no registry"),
    ):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.stdout)
        assert message in result.stderr, (args, result.stderr)


def test_v1_store_json_uses_image_ids(cli, tmp_path: Path) -> None:
    v1 = V1Store(LocalDriver(tmp_path), "docker-registry")
    image = v1.add_chain(2)
    v1.tag("exampleapp", "1.0", image)
    doc = cli.json("verify", "-l", str(tmp_path), "exampleapp:1.0", "--quick")
    assert doc["layout"] == "v1"
    assert doc["results"] == [
        {
            "repository": "library/exampleapp",
            "tag": "1.0",
            "image_id": image.image_id,
            "status": "ok",
            "problems": [],
        }
    ]
    assert doc["totals"]["bytes_hashed"] == 0
    v1.driver.delete(f"docker-registry/images/{image.ancestry[1]}/_checksum")
    result = cli("verify", "-l", str(tmp_path), "--all", "--blobs")
    assert result.exit_code == 1
    assert "has no _checksum" in result.stdout


def test_progress_bar_only_on_a_terminal(cli, store: PushedStore, monkeypatch) -> None:
    monkeypatch.setattr("regtool.cli.verify.stderr_is_terminal", lambda: True)
    result = cli("verify", "--all", "--blobs", "-l", str(store.root), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["totals"]["ok"] == 5  # stdout stays pure JSON
