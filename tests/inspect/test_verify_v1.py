"""`verify` on V1 (`docker-registry`) stores, built through every driver and damaged:
a flipped layer byte, a broken ancestry chain, a dropped `_checksum`, an unfinished upload."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regtool.errors import UsageError
from regtool.inspect.verify import Verification, verify_registry
from regtool.layout.detect import detect_layout
from regtool.layout.v1 import V1Layout
from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from tests.v1store import V1Image, V1Store


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    return LocalDriver(tmp_path / "root")


def _sftp(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    return request.getfixturevalue("sshd_service").driver(f"verify-{uuid.uuid4().hex[:8]}")


def _swift(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    return request.getfixturevalue("swift_service").driver(f"verify-{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=[_local, _sftp, _swift], ids=["local", "sftp", "swift"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    d = request.param(request, tmp_path)
    try:
        yield d
    finally:
        d.close()


class Built:
    """app:1.0 -> a chain of 3; app:latest -> one more on top; tool:2 -> a chain of 1."""

    def __init__(self, driver: Driver):
        self.store = V1Store(driver, "docker-registry")
        self.app = self.store.add_chain(3)
        self.latest = self.store.add_image(self.app.image_id)
        self.tool = self.store.add_chain(1)
        self.store.tag("app", "1.0", self.app)
        self.store.tag("app", "latest", self.latest)
        self.store.tag("team/tool", "2", self.tool)
        layout = detect_layout(driver)
        assert isinstance(layout, V1Layout)
        self.layout = layout

    def run(self, *targets: str, **options: bool) -> Verification:
        everything = options.pop("everything", not targets)
        return verify_registry(self.layout, "t", targets, everything=everything, **options)

    def file(self, image: V1Image, name: str) -> str:
        return self.layout.image_file(image.image_id, name)

    def base(self) -> V1Image:
        return self.store.images[self.app.ancestry[-1]]


def damaged(v: Verification) -> dict[str, list[tuple[str, str]]]:
    return {
        f"{r.repository}:{r.tag}": [(p.object, p.kind) for p in r.problems]
        for r in v.results
        if r.problems
    }


@pytest.fixture
def built(driver: Driver) -> Built:
    return Built(driver)


def test_clean_v1_store(built: Built) -> None:
    v = built.run()
    assert v.ok
    assert [(r.repository, r.tag, r.image_id, r.status) for r in v.results] == [
        ("library/app", "1.0", built.app.image_id, "ok"),
        ("library/app", "latest", built.latest.image_id, "ok"),
        ("team/tool", "2", built.tool.image_id, "ok"),
    ]
    assert v.images == 5
    assert v.bytes_hashed == sum(len(i.layer) for i in built.store.images.values())


def test_flipped_layer_byte_in_a_shared_ancestor(built: Built) -> None:
    base = built.base()
    data = bytearray(base.layer)
    data[50] ^= 1
    built.layout.driver.put(built.file(base, "layer"), bytes(data))
    v = built.run()
    bad = [(base.image_id, "digest")]
    assert damaged(v) == {"library/app:1.0": bad, "library/app:latest": bad}
    assert "json + layer hash to sha256:" in v.results[0].problems[0].detail
    assert built.run(quick=True).ok


def test_broken_ancestry_chain(built: Built) -> None:
    # the middle image forgets its parent
    middle = built.store.images[built.app.ancestry[1]]
    built.layout.driver.put(built.file(middle, "ancestry"), json.dumps([middle.image_id]).encode())
    v = built.run()
    bad = [(middle.image_id, "invalid")]
    assert damaged(v) == {"library/app:1.0": bad, "library/app:latest": bad}


def test_missing_parent_image(built: Built) -> None:
    base = built.base()
    built.layout.driver.delete(built.layout.image_dir(base.image_id))
    v = built.run("app:1.0")
    assert damaged(v) == {"library/app:1.0": [(base.image_id, "missing")]}


def test_dropped_checksum_and_unfinished_upload(built: Built) -> None:
    built.layout.driver.delete(built.file(built.tool, "_checksum"))
    built.layout.driver.put(built.file(built.latest, "_inprogress"), b"true")
    v = built.run()
    assert damaged(v) == {
        "library/app:latest": [(built.latest.image_id, "incomplete")],
        "team/tool:2": [(built.tool.image_id, "missing")],
    }
    assert "_checksum" in v.results[2].problems[0].detail


def test_json_naming_another_id_and_bare_string_checksum(built: Built) -> None:
    tool = built.tool
    built.layout.driver.put(built.file(tool, "_checksum"), tool.checksum.encode())
    assert built.run("team/tool").ok  # an old bare-string _checksum is fine
    doc = json.loads(tool.json_bytes)
    doc["id"] = built.app.image_id
    built.layout.driver.put(built.file(tool, "json"), json.dumps(doc).encode())
    assert damaged(built.run("team/tool:2")) == {
        "team/tool:2": [(tool.image_id, "invalid"), (tool.image_id, "digest")]
    }


def test_blob_scan_covers_untagged_images(built: Built) -> None:
    orphan = built.store.add_image()
    built.layout.driver.put(built.file(orphan, "layer"), b"rot")
    assert built.run().ok
    v = built.run(blobs=True)
    assert damaged(v) == {"None:None": [(orphan.image_id, "digest")]}


def test_v1_targets(built: Built) -> None:
    v = built.run("app:latest", "library/app:1.0")
    assert [(r.repository, r.tag) for r in v.results] == [
        ("library/app", "latest"),
        ("library/app", "1.0"),
    ]
    with pytest.raises(UsageError, match="no digests"):
        built.run("app@sha256:" + "0" * 64)


@pytest.mark.parametrize(
    "around", [(b"", b"\n"), (b"", b"\r\n"), (b" ", b" "), (b'"', b'"')], ids=repr
)
def test_a_tag_file_with_bytes_around_its_id_is_invalid(
    tmp_path: Path, cli: Any, around: tuple[bytes, bytes]
) -> None:
    """The Python registry writes a tag file as the bare id and serves it as it is: with
    a newline, CR, spaces or quotes around the id, clients ask for an image that is not
    there. verify says `invalid`, ls warns, gc deletes nothing on it."""
    built = Built(LocalDriver(tmp_path / "root"))
    orphan = built.store.add_chain(1)  # garbage, were the store sound
    path = built.layout.tag_file("team/tool", "2")
    built.layout.driver.put(path, around[0] + built.tool.image_id.encode() + around[1])

    assert damaged(built.run()) == {"team/tool:2": [("team/tool:2", "invalid")]}
    root = str(tmp_path / "root")
    listed = cli("ls", root)
    assert listed.exit_code == 0
    assert "warning: team/tool:2:" in listed.stderr and "other bytes around it" in listed.stderr
    collected = cli("gc", "--min-age", "0", "--settle", "0s", "-l", root)
    assert collected.exit_code == 0 and "nothing deleted" in collected.stderr
    assert built.layout.driver.exists(built.layout.image_file(orphan.image_id, "layer"))
