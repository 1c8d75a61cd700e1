"""`regtool migrate` on local directories: what the V2 images hold, idempotence, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from regtool.layout.v1 import V1Layout, client_name
from regtool.layout.v2 import V2Layout
from regtool.migrate.run import Options, migrate
from regtool.storage.local import LocalDriver
from tests.migrate.source import Source, write_v1

pytestmark = pytest.mark.usefixtures("image_tools")


def _v1(tmp_path: Path, source: Source) -> Path:
    root = tmp_path / "v1"
    write_v1(LocalDriver(root), source, names={"app": "exampleapp:1.0", "tools": "team/tools:2"})
    return root


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def _blob(v2: Path, digest: str) -> Any:
    alg, _, hexpart = digest.partition(":")
    return json.loads(
        (v2 / "docker/registry/v2/blobs" / alg / hexpart[:2] / hexpart / "data").read_bytes()
    )


def test_tags_become_images_with_the_layers_diff_ids_and_history(
    tmp_path: Path, source: Source, cli: Any
) -> None:
    v1 = _v1(tmp_path, source)
    v1_files = _files(v1)
    v2 = tmp_path / "v2"
    doc = cli.json("migrate", str(v1), "--to", str(v2))
    assert {(r["repository"], r["tag"], r["status"]) for r in doc["results"]} == {
        ("exampleapp", "1.0", "migrated"),
        ("team/tools", "2", "migrated"),
    }
    # the shared base is converted once; the empty layer is no blob
    assert doc["totals"]["layers_converted"] == 5
    assert doc["totals"]["empty_layers"] == 1
    assert _files(v1) == v1_files  # the V1 store is only read

    digests = {r["repository"]: r["digest"] for r in doc["results"]}
    manifest = _blob(v2, digests["exampleapp"])
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert len(manifest["layers"]) == 3
    config = _blob(v2, manifest["config"]["digest"])
    # the diff_ids are those of the tars umoci made: each layer came back byte for byte
    assert config["rootfs"] == {
        "type": "layers",
        "diff_ids": source.configs["app"]["rootfs"]["diff_ids"],
    }
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["config"]["Cmd"] == ["/bin/true"]
    assert config["created"] == "2015-03-13T16:47:03.000000000Z"
    assert not {"id", "parent", "Size"} & set(config)
    history = config["history"]
    assert [h.get("empty_layer", False) for h in history] == [False, True, False, False]
    assert history[1]["created_by"] == "/bin/sh -c #(nop) ENV A=1"
    assert history[0]["comment"] == "the base"
    assert all(h["author"] == "V1 Author <author@example.com>" for h in history)

    ls = cli.json("ls", str(v2))
    v1_ls = cli.json("ls", str(v1))
    # the same repositories and tags; `library/` goes, as clients never named it
    assert (
        {(r["name"], t["tag"]) for r in ls["repositories"] for t in r["tags"]}
        == {(client_name(r["name"]), t["tag"]) for r in v1_ls["repositories"] for t in r["tags"]}
        == {("exampleapp", "1.0"), ("team/tools", "2")}
    )
    verify = cli("verify", "--all", "-l", str(v2))
    assert verify.exit_code == 0, verify.stdout


def test_the_same_input_gives_the_same_bytes(tmp_path: Path, source: Source, cli: Any) -> None:
    v1 = _v1(tmp_path, source)
    first = cli.json("migrate", str(v1), "--to", str(tmp_path / "a"), "--jobs", "1")
    second = cli.json("migrate", str(v1), "--to", str(tmp_path / "b"), "--jobs", "4")
    assert [r["digest"] for r in first["results"]] == [r["digest"] for r in second["results"]]
    blobs = lambda root: {  # noqa: E731
        p.parent.name: p.read_bytes() for p in (root / "docker/registry/v2/blobs").rglob("data")
    }
    assert blobs(tmp_path / "a") == blobs(tmp_path / "b")


def test_a_second_run_writes_nothing(tmp_path: Path, source: Source, cli: Any) -> None:
    v1 = _v1(tmp_path, source)
    v2 = tmp_path / "v2"
    first = cli.json("migrate", str(v1), "--to", str(v2))
    before = _files(v2)
    again = cli.json("migrate", str(v1), "--to", str(v2))
    assert _files(v2) == before
    assert [r["status"] for r in again["results"]] == ["skipped", "skipped"]
    assert [r["digest"] for r in again["results"]] == [r["digest"] for r in first["results"]]
    assert again["totals"]["bytes_read"] == 0


def test_in_place_runs_again_and_continues(tmp_path: Path, source: Source, cli: Any) -> None:
    """SOURCE and DEST one store: the V2 tree written beside the V1 one does not hide the
    V1 store from the next run (which skips what is done), nor from a dry run."""
    store = _v1(tmp_path, source)
    first = cli.json("migrate", str(store), "--to", str(store))
    assert [r["status"] for r in first["results"]] == ["migrated", "migrated"]
    before = _files(store)
    again = cli.json("migrate", str(store), "--to", str(store))
    assert [r["status"] for r in again["results"]] == ["skipped", "skipped"]
    assert _files(store) == before
    planned = cli.json("migrate", str(store), "--to", str(store), "--dry-run")
    assert [r["status"] for r in planned["results"]] == ["skipped", "skipped"]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("migrate", str(empty), "--to", str(tmp_path / "v2"))
    assert result.exit_code == 2 and "holds no registry, not a V1 one" in result.stderr


def test_a_tag_naming_another_image_is_replaced_and_said(
    tmp_path: Path, source: Source, cli: Any
) -> None:
    v1 = _v1(tmp_path, source)
    v2 = tmp_path / "v2"
    first = cli.json("migrate", str(v1), "--to", str(v2))
    other = "sha256:" + "0" * 64
    link = v2 / "docker/registry/v2/repositories/exampleapp/_manifests/tags/1.0/current/link"
    link.write_text(other)  # pushed meanwhile by someone else
    again = cli.json("migrate", str(v1), "--to", str(v2))
    by_tag = {r["tag"]: r for r in again["results"]}
    assert by_tag["1.0"]["status"] == "migrated" and by_tag["1.0"]["replaces"] == other
    assert by_tag["2"]["status"] == "skipped" and by_tag["2"]["replaces"] is None
    assert link.read_text() == first["results"][0]["digest"]


class _Killed(BaseException):
    """Stands for the process being killed: nothing catches it."""


class _KillAfter:
    def __init__(self, layers: int):
        self.left = layers

    def start(self, images: int, nbytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def image_done(self) -> None:
        self.left -= 1
        if self.left == 0:
            raise _Killed


def test_a_run_killed_halfway_continues_to_the_same_digests(
    tmp_path: Path, source: Source, cli: Any
) -> None:
    v1 = _v1(tmp_path, source)
    reference = cli.json("migrate", str(v1), "--to", str(tmp_path / "ref"))
    dest = V2Layout(LocalDriver(tmp_path / "v2"))
    with pytest.raises(_Killed):
        migrate(V1Layout(LocalDriver(v1)), dest, Options(jobs=1), _KillAfter(2))
    assert not (tmp_path / "v2/docker/registry/v2/repositories/exampleapp/_manifests").exists()
    resumed = cli.json("migrate", str(v1), "--to", str(tmp_path / "v2"))
    # the layers recorded before the kill are not read again
    assert resumed["totals"]["layers_reused"] == 2
    assert resumed["totals"]["layers_converted"] == 3
    assert [r["digest"] for r in resumed["results"]] == [r["digest"] for r in reference["results"]]
    assert cli("verify", "--all", "-l", str(tmp_path / "v2")).exit_code == 0
    # no upload is left behind by the killed conversion
    assert not list((tmp_path / "v2").rglob("_uploads/*"))


def test_dry_run_writes_nothing(tmp_path: Path, source: Source, cli: Any) -> None:
    v1 = _v1(tmp_path, source)
    doc = cli.json("migrate", str(v1), "--to", str(tmp_path / "v2"), "--dry-run")
    assert [r["status"] for r in doc["results"]] == ["planned", "planned"]
    assert not (tmp_path / "v2").exists()


def test_repositories_selects_by_glob(tmp_path: Path, source: Source, cli: Any) -> None:
    v1 = _v1(tmp_path, source)
    doc = cli.json("migrate", str(v1), "--to", str(tmp_path / "v2"), "--repositories", "team/*")
    assert [(r["repository"], r["status"]) for r in doc["results"]] == [("team/tools", "migrated")]
    doc = cli.json("migrate", str(v1), "--to", str(tmp_path / "v2"), "-r", "exampleapp")
    assert [r["repository"] for r in doc["results"]] == ["exampleapp"]


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_oci_format_and_compression(
    tmp_path: Path, source: Source, cli: Any, compression: str
) -> None:
    v1 = _v1(tmp_path, source)
    v2 = tmp_path / "v2"
    doc = cli.json(
        "migrate", str(v1), "--to", str(v2), "--format", "oci", "--compression", compression
    )
    manifest = _blob(v2, doc["results"][0]["digest"])
    suffix = "" if compression == "none" else f"+{compression}"
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        f"application/vnd.oci.image.layer.v1.tar{suffix}"
    }
    config = _blob(v2, manifest["config"]["digest"])
    assert config["rootfs"]["diff_ids"] == source.configs["app"]["rootfs"]["diff_ids"]
    assert cli("verify", "--all", "-l", str(v2)).exit_code == 0


def test_zstd_needs_the_oci_format(tmp_path: Path, source: Source, cli: Any) -> None:
    v1 = _v1(tmp_path, source)
    result = cli("migrate", str(v1), "--to", str(tmp_path / "v2"), "--compression", "zstd")
    assert result.exit_code == 2
    assert "needs --format oci" in result.stderr
    assert not (tmp_path / "v2").exists()


def test_a_v2_source_is_refused(tmp_path: Path, source: Source, cli: Any) -> None:
    v1 = _v1(tmp_path, source)
    cli.json("migrate", str(v1), "--to", str(tmp_path / "v2"))
    result = cli("migrate", str(tmp_path / "v2"), "--to", str(tmp_path / "v3"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "not a V1 one" in result.stderr


class _Recorder:
    def __init__(self) -> None:
        self.started: tuple[int, int] | None = None
        self.read = 0
        self.done = 0

    def start(self, images: int, nbytes: int) -> None:
        self.started = (images, nbytes)

    def advance(self, nbytes: int) -> None:
        self.read += nbytes

    def image_done(self) -> None:
        self.done += 1


def test_progress_counts_layers_and_bytes(tmp_path: Path, source: Source) -> None:
    v1 = _v1(tmp_path, source)
    recorder = _Recorder()
    dest = V2Layout(LocalDriver(tmp_path / "v2"))
    result = migrate(V1Layout(LocalDriver(v1)), dest, Options(), recorder)
    layer_bytes = sum(p.stat().st_size for p in v1.glob("images/*/layer"))
    assert recorder.started == (5, layer_bytes)
    assert recorder.read == result.bytes_read == layer_bytes
    assert recorder.done == 5


def test_location_option_and_a_missing_source(tmp_path: Path, source: Source, cli: Any) -> None:
    v1 = _v1(tmp_path, source)
    doc = cli.json("migrate", "-l", str(v1), "--to", str(tmp_path / "v2"))
    assert {r["status"] for r in doc["results"]} == {"migrated"}
    result = cli("migrate", "--to", str(tmp_path / "v3"))
    assert result.exit_code == 2 and "SOURCE or --location" in result.stderr
