"""`V2Layout.iter_repository_names`: the names a walk of the whole tree gives, from
listings of directories alone, in the order of their components, on every backend
(Swift lists directories by delimiter)."""

from __future__ import annotations

from regtool.layout.detect import default_layout
from regtool.layout.v2 import V2Layout, link_content
from regtool.oci import Digest
from regtool.storage.base import Driver
from tests.storage.conftest import driver
from tests.v2store import write_image

__all__ = ["driver"]


def test_names_match_a_walk_of_the_whole_tree(driver: Driver) -> None:
    layout = default_layout(driver)
    for name in ("app", "team/app-x", "team/app", "team/app/sub", "deep/a/b/c"):
        write_image(layout, name, "1")
    some = Digest("sha256", "0" * 64)
    # not repositories: a name outside the grammar, a first push with no manifest yet
    driver.put(
        f"{layout.repositories_dir()}/Bad/_manifests/tags/1/current/link", link_content(some)
    )
    driver.put(layout.layer_link("pushing/app", some), link_content(some))
    try:
        names = list(layout.iter_repository_names())
        assert names == ["app", "deep/a/b/c", "team/app", "team/app/sub", "team/app-x"]
        assert sorted(names) == sorted(layout.scan_repositories())
        assert list(V2Layout(driver, "elsewhere").iter_repository_names()) == []
    finally:
        driver.delete(layout.root.split("/")[0])
