"""V1 tag file names as the Python `docker-registry` writes them: tag T in `tag_T`, its
metadata in `tag<T>_json`. A tag may start with `_`, so the metadata of `_dev`
(`tag_dev_json`) has the name a tag `dev_json` would have, and the two tags together
share one file: whichever was pushed last wrote it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from regtool.gc import GcOptions, collect
from regtool.inspect.listing import list_registry
from regtool.inspect.verify import verify_registry
from regtool.layout.v1 import V1Layout
from regtool.storage.local import LocalDriver
from tests.v1store import V1Store


@pytest.fixture
def v1(tmp_path: Path) -> V1Store:
    return V1Store(LocalDriver(tmp_path))


def tags(store: V1Store) -> dict[str, str | None]:
    listing = list_registry(V1Layout(store.driver), "t")
    return {t.tag: t.image_id for r in listing.repositories for t in r.tags}


def files(store: V1Store) -> set[str]:
    return {e.name for e in store.driver.walk("repositories/library/app")}


def test_a_tag_starting_with_an_underscore(v1: V1Store, cli: Any, tmp_path: Path) -> None:
    image = v1.add_chain(1)
    v1.tag("app", "latest", image)
    v1.tag("app", "_dev", image)
    assert "tag_dev_json" in files(v1)  # the metadata of _dev
    assert tags(v1) == {"latest": image.image_id, "_dev": image.image_id}
    result = cli("verify", "--all", "-l", str(tmp_path))
    assert result.exit_code == 0, result.stdout
    assert result.stderr == ""
    assert cli("ls", str(tmp_path)).stderr == ""  # no phantom tag, no warning


@pytest.mark.parametrize("name", ["_", "__", "_json", "_x_json", "a_json", "x.y-z_json"])
def test_every_shape_of_name_the_grammar_allows(v1: V1Store, name: str) -> None:
    image = v1.add_chain(1)
    v1.tag("app", name, image)
    assert tags(v1) == {name: image.image_id}


def test_dev_json_pushed_after_dev_keeps_both(v1: V1Store) -> None:
    dev, dev_json = v1.add_chain(1), v1.add_chain(1)
    v1.tag("app", "_dev", dev)
    v1.tag("app", "dev_json", dev_json)  # overwrites _dev's metadata with its tag file
    assert tags(v1) == {"_dev": dev.image_id, "dev_json": dev_json.image_id}
    assert verify_registry(V1Layout(v1.driver), "t", everything=True).ok


def test_dev_pushed_after_dev_json_loses_that_tag(v1: V1Store, cli: Any, tmp_path: Path) -> None:
    dev, dev_json = v1.add_chain(1), v1.add_chain(1)
    v1.tag("app", "dev_json", dev_json)
    v1.tag("app", "_dev", dev)  # overwrites the tag file of dev_json with its metadata
    layout = V1Layout(v1.driver)
    listing = list_registry(layout, "t")
    assert {t.tag: t.image_id for t in listing.repositories[0].tags} == {
        "_dev": dev.image_id,
        "dev_json": None,
    }
    (warning,) = listing.warnings
    assert "tag_dev_json holds the metadata of tag _dev, not an image id" in warning
    v = verify_registry(layout, "t", everything=True)
    assert [(r.tag, [p.kind for p in r.problems]) for r in v.results] == [
        ("_dev", []),
        ("dev_json", ["invalid"]),
    ]
    assert cli("verify", "--all", "-l", str(tmp_path)).exit_code == 1
    # gc cannot tell what the lost tag held: it deletes nothing
    result = collect(layout, "t", GcOptions(min_age=timedelta(0)))
    assert result.items == [] and "nothing deleted" in result.warnings[-1]


def test_metadata_left_by_a_deleted_tag_is_no_tag(v1: V1Store) -> None:
    image = v1.add_chain(1)
    v1.tag("app", "1.0", image)
    v1.tag("app", "_dev", image)
    v1.driver.delete("repositories/library/app/tag__dev")  # the registry's delete, cut short
    assert tags(v1) == {"1.0": image.image_id}


def test_a_tag_file_with_no_metadata_beside_it(v1: V1Store) -> None:
    # registries before tag metadata existed wrote the tag file alone
    image = v1.add_chain(1)
    v1.driver.put("repositories/library/app/tag_a_json", image.image_id.encode())
    assert tags(v1) == {"a_json": image.image_id}
    v1.driver.put("repositories/library/app/tag_b_json", json.dumps({"x": 1}).encode())
    assert tags(v1) == {"a_json": image.image_id}  # the metadata of a deleted tag _b
