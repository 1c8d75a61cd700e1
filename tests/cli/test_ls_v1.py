"""`regtool ls` on a V1 (`docker-registry`) store in a local directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regtool.storage.local import LocalDriver
from tests.v1store import V1Store


def test_lists_v1_store_under_a_prefix(cli, tmp_path: Path) -> None:
    store = V1Store(LocalDriver(tmp_path), "docker-registry")
    app = store.add_chain(3)
    other = store.add_image(app.image_id)
    store.tag("exampleapp", "1.0", app)
    store.tag("exampleapp", "latest", other)
    store.tag("team/tool", "2", store.add_chain(1))

    doc = cli.json("ls", str(tmp_path))
    assert doc["layout"] == "v1"
    assert [r["name"] for r in doc["repositories"]] == ["library/exampleapp", "team/tool"]
    tags = {t["tag"]: t for t in doc["repositories"][0]["tags"]}
    assert tags["1.0"]["image_id"] == app.image_id
    assert tags["1.0"]["digest"] is None
    assert tags["1.0"]["size"] == store.layer_bytes(app)
    assert tags["latest"]["size"] == store.layer_bytes(other)
    assert tags["1.0"]["pushed"].endswith("Z")
    # the three shared ancestors count once in the total
    unique = {i for img in (app, other) for i in img.ancestry}
    team = doc["repositories"][1]["tags"][0]
    assert doc["totals"] == {
        "repositories": 2,
        "tags": 3,
        "size": sum(len(store.images[i].layer) for i in unique) + team["size"],
    }


def test_one_repository_and_the_library_namespace(cli, tmp_path: Path) -> None:
    store = V1Store(LocalDriver(tmp_path))
    store.tag("exampleapp", "1.0", store.add_chain(2))
    store.tag("other", "x", store.add_chain(1))
    for name in ("exampleapp", "library/exampleapp"):
        doc = cli.json("ls", str(tmp_path), name)
        assert [r["name"] for r in doc["repositories"]] == ["library/exampleapp"]
    result = cli("ls", str(tmp_path), "nosuchrepo")
    assert result.exit_code == 2
    assert "repository nosuchrepo not found" in result.stderr


def test_table_output(cli, tmp_path: Path) -> None:
    store = V1Store(LocalDriver(tmp_path))
    image = store.add_chain(2)
    store.tag("exampleapp", "1.0", image)
    result = cli("ls", str(tmp_path))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["REPOSITORY", "TAG", "IMAGE", "ID"]
    assert lines[1].split()[:4] == ["library/exampleapp", "1.0", image.image_id[:12], "v1"]
    assert "1 repository, 1 tag, " in result.stdout


def test_damaged_v1_data_warns_and_lists_the_rest(cli, tmp_path: Path) -> None:
    driver = LocalDriver(tmp_path)
    store = V1Store(driver)
    good = store.add_chain(2)
    bad = store.add_chain(1)
    store.tag("good", "1", good)
    store.tag("bad", "1", bad)
    driver.put("repositories/library/bad/tag_2", b"not an image id")
    driver.put(f"images/{bad.image_id}/ancestry", b"{broken")
    result = cli("ls", str(tmp_path), "--json")
    assert result.exit_code == 0
    assert "library/bad:2: repositories/library/bad/tag_2 does not hold an image id" in (
        result.stderr
    )
    assert "ancestry" in result.stderr
    assert "library/good" in result.stdout


@pytest.mark.swift
def test_bare_container_name_reads_v1_store_in_swift(
    cli, swift_service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed deployment: container `docker_registry`, prefix `docker-registry/`."""
    driver = swift_service.driver("docker_registry")
    try:
        store = V1Store(driver, "docker-registry")
        image = store.add_chain(2)
        store.tag("exampleapp", "1.0", image)
        monkeypatch.chdir(tmp_path)  # no local directory called docker_registry here
        env = {
            "ST_AUTH": swift_service.auth_url,
            "ST_USER": swift_service.user,
            "ST_KEY": swift_service.key,
        }
        doc = cli.json("ls", "docker_registry", env=env)
        assert doc["location"] == "swift://docker_registry"
        assert doc["layout"] == "v1"
        [repo] = doc["repositories"]
        assert repo["name"] == "library/exampleapp"
        [tag] = repo["tags"]
        assert (tag["tag"], tag["image_id"], tag["size"]) == (
            "1.0",
            image.image_id,
            store.layer_bytes(image),
        )
        explicit = cli.json("ls", "swift://docker_registry/docker-registry", "exampleapp", env=env)
        assert explicit["repositories"] == doc["repositories"]
    finally:
        driver.delete("docker-registry")
        driver.close()


@pytest.mark.swift
def test_v1_layer_stored_as_swift_large_object(cli, swift_service) -> None:
    """A layer that is a DLO lists as 0 bytes in Swift: its real size must still show."""
    driver = swift_service.driver("v1-dlo-layers", segment_size=64 * 1024)
    try:
        store = V1Store(driver)
        image = store.add_image(size=200_000)
        with driver.writer(f"images/{image.image_id}/layer") as w:  # rewrite as a DLO
            w.write(image.layer)
            w.commit()
        store.tag("big", "1", image)
        env = {
            "ST_AUTH": swift_service.auth_url,
            "ST_USER": swift_service.user,
            "ST_KEY": swift_service.key,
        }
        result = cli("ls", "swift://v1-dlo-layers", "--json", env=env)
        assert result.exit_code == 0 and "warning" not in result.stderr, result.stderr
        [tag] = json.loads(result.stdout)["repositories"][0]["tags"]
        assert tag["size"] == len(image.layer) > 64 * 1024
    finally:
        driver.delete("images")
        driver.delete("repositories")
        driver.close()
