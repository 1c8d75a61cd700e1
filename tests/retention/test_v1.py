"""Retention on V1 (`docker-registry`) stores: untagging removes `tag_<tag>` and
`tag<tag>_json`; gc then deletes the images no tag reaches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from tests.v1store import V1Store


@pytest.fixture(params=["local", "swift"])
def v1_location(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[Driver, str, dict[str, str]]:
    if request.param == "local":
        return LocalDriver(tmp_path / "v1"), str(tmp_path / "v1"), {}
    service = request.getfixturevalue("swift_service")
    container = f"v1r-{tmp_path.name[-20:].lower().replace('_', '-')}"
    service.create_container(container)
    env = {"ST_AUTH": service.auth_url, "ST_USER": service.user, "ST_KEY": service.key}
    return service.driver(container), f"swift://{container}", env


def _files(driver: Driver) -> set[str]:
    return {e.path for e in driver.walk("")}


def test_prune_and_rm_on_a_v1_store(
    cli: Any, v1_location: tuple[Driver, str, dict[str, str]]
) -> None:
    driver, location, env = v1_location
    store = V1Store(driver, "docker-registry")
    old, new = store.add_chain(2), store.add_chain(2)
    store.tag("exampleapp", "1.0", old)  # tags written in this order: push times rise
    store.tag("exampleapp", "1.1", new)
    store.tag("exampleapp", "latest", new)
    store.tag("team/tool", "2", store.add_chain(1))
    repo = "docker-registry/repositories/library/exampleapp"

    plan = cli.json(
        "prune", "-l", location, "--keep-last", "1", "--keep-tags", "latest", "-n", env=env
    )
    assert plan["layout"] == "v1"
    decided = {(r["name"], t["tag"]): t["keep"] for r in plan["repositories"] for t in r["tags"]}
    assert decided == {
        ("library/exampleapp", "1.0"): False,
        ("library/exampleapp", "1.1"): True,
        ("library/exampleapp", "latest"): True,
        ("team/tool", "2"): True,
    }
    before = _files(driver)
    done = cli.json("prune", "-l", location, "--keep-last", "1", "--keep-tags", "latest", env=env)
    assert before - _files(driver) == {f"{repo}/tag_1.0", f"{repo}/tag1.0_json"}
    assert done["totals"]["tags_deleted"] == 1 and done["totals"]["failed"] == 0
    gc = cli.json("gc", "-l", location, "--min-age", "0", "--dry-run", env=env)
    assert {o["name"] for o in gc["objects"]} == set(old.ancestry)

    done = cli.json("rm", "-l", location, "exampleapp:latest", env=env)  # library/ implied
    outcomes = {t["tag"]: t["outcome"] for r in done["repositories"] for t in r["tags"]}
    assert outcomes == {"1.1": None, "latest": "deleted"}
    assert f"{repo}/tag_latest" not in _files(driver)
    assert f"{repo}/tag_1.1" in _files(driver)

    refused = cli("rm", "-l", location, "exampleapp@sha256:" + "0" * 64, env=env)
    assert refused.exit_code == 2
    assert "V1 store has no manifests" in refused.stderr
