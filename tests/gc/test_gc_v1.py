"""V1 stores: images in no tag's ancestry go, through any driver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from tests.v1store import V1Store


@pytest.fixture(params=["local", "swift"])
def v1_location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Driver, str, dict]:
    if request.param == "local":
        return LocalDriver(tmp_path / "v1"), str(tmp_path / "v1"), {}
    service = request.getfixturevalue("swift_service")
    container = f"v1-{tmp_path.name[-20:].lower().replace('_', '-')}"
    service.create_container(container)
    env = {"ST_AUTH": service.auth_url, "ST_USER": service.user, "ST_KEY": service.key}
    return service.driver(container), f"swift://{container}", env


def test_orphaned_v1_images_go(cli: Any, v1_location: tuple[Driver, str, dict]) -> None:
    driver, location, env = v1_location
    store = V1Store(driver, "docker-registry" if location.startswith("swift") else "")
    kept = store.add_chain(3)
    store.tag("exampleapp", "1.0", kept)
    shared_child = store.add_image(parent=kept.ancestry[1])  # built on a kept image
    store.tag("other/app", "2", shared_child)
    lost_chain = store.add_chain(2)
    lost_leaf = store.add_image(parent=kept.image_id)  # untagged child of a tagged image
    orphans = {lost_chain.image_id, *lost_chain.ancestry, lost_leaf.image_id}
    if location.startswith("swift"):  # a layer stored as a large object, with segments
        writer = driver.writer(f"{store.root}/images/{lost_leaf.image_id}/layer")
        writer.write(lost_leaf.layer)
        writer.commit()

    plan = cli.json("gc", "-l", location, "--min-age", "0", "--dry-run", env=env)
    assert plan["layout"] == "v1"
    assert {o["name"] for o in plan["objects"]} == orphans
    assert all(o["kind"] == "v1-image" and o["size"] > 0 for o in plan["objects"])
    assert cli.json("gc", "-l", location, "--dry-run", env=env)["objects"] == []  # young

    segments = {p for o in plan["objects"] for p in o["paths"] if p.startswith("segments/")}
    assert bool(segments) == location.startswith("swift")

    done = cli.json("gc", "-l", location, "--min-age", "0", env=env)
    assert not segments & {e.path for e in driver.walk("")}
    assert all(o["deleted"] for o in done["objects"]) and len(done["objects"]) == 3
    images = {
        e.path.split("/")[-2]
        for e in driver.walk(store.root + "/images" if store.root else "images")
    }
    assert images == set(store.images) - orphans
    again = cli.json("gc", "-l", location, "--min-age", "0", "--dry-run", env=env)
    assert again["objects"] == []
