"""Damaged V1 images: the tags they belong to fail with the reason, nothing of them is
linked, the other tags are migrated; a storage fault is told apart (exit 2)."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from regtool.storage.local import LocalDriver
from tests.faults import Fault, use_faulty_storage
from tests.v1store import V1Store


def _put(root: Path, store: V1Store, image_id: str, name: str, data: bytes) -> None:
    store.driver.put(f"images/{image_id}/{name}", data)


def _rechecksum(store: V1Store, image_id: str, layer: bytes) -> None:
    """Replace the layer and its checksum consistently: only the content is damaged."""
    image = store.images[image_id]
    image.layer = layer
    store.driver.put(f"images/{image_id}/layer", layer)
    store.driver.put(f"images/{image_id}/_checksum", json.dumps([image.checksum]).encode())


def _damaged_store(root: Path) -> V1Store:
    store = V1Store(LocalDriver(root))
    base = store.add_chain(2)
    store.tag("good", "1", base)
    store.tag("shares", "base", store.add_image(base.image_id))

    gone = store.add_image(base.image_id)
    store.tag("missing", "layer", store.add_image(gone.image_id))
    store.driver.delete(f"images/{gone.image_id}/layer")

    bad = store.add_image(base.image_id)
    store.driver.put(f"images/{bad.image_id}/layer", gzip.compress(b"\0" * 1024, mtime=0))
    store.tag("bad", "checksum", bad)

    a = store.add_image()
    b = store.add_image(a.image_id)
    store.driver.put(
        f"images/{b.image_id}/ancestry", json.dumps([b.image_id, a.image_id, b.image_id]).encode()
    )
    store.tag("loop", "ancestry", b)

    not_tar = store.add_image(base.image_id)
    _rechecksum(store, not_tar.image_id, gzip.compress(b"this is no tar archive" * 100, mtime=0))
    store.tag("corrupt", "tar", not_tar)

    cut = store.add_image(base.image_id)
    _rechecksum(store, cut.image_id, cut.layer[: len(cut.layer) // 2])
    store.tag("corrupt", "gzip", cut)

    wrong_parent = store.add_image(base.image_id)
    doc = json.loads(wrong_parent.json_bytes)
    doc["parent"] = a.image_id
    store.driver.put(f"images/{wrong_parent.image_id}/json", json.dumps(doc).encode())
    store.tag("wrong", "parent", wrong_parent)

    # Types no client reads: the image would migrate, and then fail every pull.
    for tag, field, value in (
        ("created", "created", "yesterday"),
        ("env", "config", {"Env": "A=1"}),
        ("os", "os", 5),
    ):
        odd = store.add_image(base.image_id)
        doc = json.loads(odd.json_bytes)
        doc[field] = value
        store.driver.put(f"images/{odd.image_id}/json", json.dumps(doc).encode())
        store.tag("types", tag, odd)
    return store


def test_damage_fails_its_tags_and_the_rest_are_migrated(tmp_path: Path, cli: Any) -> None:
    _damaged_store(tmp_path / "v1")
    v2 = tmp_path / "v2"
    result = cli("migrate", str(tmp_path / "v1"), "--to", str(v2), "--json")
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    outcome = {f"{r['repository']}:{r['tag']}": (r["status"], r["reason"]) for r in doc["results"]}
    assert outcome.pop("good:1") == ("migrated", None)
    assert outcome.pop("shares:base") == ("migrated", None)
    reasons = {k: v[1] for k, v in outcome.items() if v[0] == "failed"}
    assert set(reasons) == set(outcome)
    assert "layer missing" in reasons["missing:layer"]
    assert "checksum mismatch" in reasons["bad:checksum"]
    assert "ancestry loop" in reasons["loop:ancestry"]
    assert "corrupt tar" in reasons["corrupt:tar"]
    assert (
        "corrupt gzip stream" in reasons["corrupt:gzip"] or "cut short" in reasons["corrupt:gzip"]
    )
    assert "parent" in reasons["wrong:parent"]
    assert "created is not an RFC 3339 time" in reasons["types:created"]
    assert "config: Env is not a list of strings" in reasons["types:env"]
    assert "os is not text" in reasons["types:os"]
    # nothing of a failed tag is linked: its repository does not even exist
    repos = v2 / "docker/registry/v2/repositories"
    assert sorted(p.name for p in repos.iterdir()) == ["good", "shares"]  # not "types"
    assert not list(v2.rglob("_uploads/*"))
    assert cli("verify", "--all", "-l", str(v2)).exit_code == 0

    table = cli("migrate", str(tmp_path / "v1"), "--to", str(v2))
    assert table.exit_code == 1
    assert "checksum mismatch" in table.stdout and "ancestry loop" in table.stdout


def test_a_storage_fault_fails_the_tag_and_exits_2(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = V1Store(LocalDriver(tmp_path / "v1"))
    broken = store.add_image(size=20_000)
    store.tag("broken", "1", broken)
    store.tag("fine", "1", store.add_image())
    use_faulty_storage(monkeypatch, Fault("read", f"images/{broken.image_id}/layer"))
    result = cli("migrate", str(tmp_path / "v1"), "--to", str(tmp_path / "v2"), "--json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert [(r["repository"], r["status"]) for r in doc["results"]] == [
        ("broken", "failed"),
        ("fine", "migrated"),
    ]
    assert "timed out" in doc["results"][0]["reason"]
    assert "run the migration again" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("how", ["bzip2", "tar"])
def test_other_compressions_checked_too(tmp_path: Path, cli: Any, how: str) -> None:
    store = V1Store(LocalDriver(tmp_path / "v1"))
    image = store.add_image()
    tar = gzip.decompress(image.layer)
    cut = tar[:700] if how == "tar" else bz2.compress(tar)[:100]
    _rechecksum(store, image.image_id, cut)
    store.tag("cut", "1", image)
    doc = json.loads(
        cli("migrate", str(tmp_path / "v1"), "--to", str(tmp_path / "v2"), "--json").stdout
    )
    assert doc["results"][0]["status"] == "failed"
    assert "cut short" in doc["results"][0]["reason"]


def test_whiteouts_pass_unchanged(tmp_path: Path, cli: Any) -> None:
    """V1 and OCI name a deletion alike (`.wh.<name>`, `.wh..wh..opq`): the tar passes
    through as it is, so its diff_id is the V1 tar's sha256."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("etc/.wh.passwd", "var/.wh..wh..opq"):
            tar.addfile(tarfile.TarInfo(name))
    raw = buf.getvalue()
    store = V1Store(LocalDriver(tmp_path / "v1"))
    image = store.add_image()
    _rechecksum(store, image.image_id, raw)
    store.tag("wh", "1", image)
    v2 = tmp_path / "v2"
    doc = json.loads(cli("migrate", str(tmp_path / "v1"), "--to", str(v2), "--json").stdout)
    digest = doc["results"][0]["digest"].split(":")[1]
    blobs = v2 / "docker/registry/v2/blobs/sha256"
    manifest = json.loads((blobs / digest[:2] / digest / "data").read_bytes())
    layer = manifest["layers"][0]["digest"].split(":")[1]
    data = gzip.decompress((blobs / layer[:2] / layer / "data").read_bytes())
    assert data == raw
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getnames() == ["etc/.wh.passwd", "var/.wh..wh..opq"]
