"""`V2Layout.scan_repositories` leaving parts of each repository out (what `ls` needs is
the tags): the same index of what it keeps on every backend, and a walk that does not go
into what it leaves out where the backend lists directory by directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from regtool.layout.detect import default_layout
from regtool.storage.base import Driver, Entry, Prune
from regtool.storage.local import LocalDriver
from tests.storage.conftest import driver
from tests.v2store import write_image

__all__ = ["driver"]


def test_tags_alone_are_indexed_as_in_a_whole_scan(driver: Driver) -> None:
    layout = default_layout(driver)
    # tags may be named as a repository's own directories are: they are not left out
    for tag in ("1.0", "_layers", "_uploads"):
        write_image(layout, "team/app", tag, layer=tag.encode())
    driver.put(layout.upload_started_at("team/app", "u1"), b"2024-01-01T00:00:00Z")
    try:
        whole = layout.scan_repositories()
        tags = layout.scan_repositories(layers=False, uploads=False)
        assert sorted(tags) == sorted(whole) == ["team/app"]
        got, all_of = tags["team/app"], whole["team/app"]
        assert sorted(got.tags) == ["1.0", "_layers", "_uploads"]
        assert got.tags == all_of.tags and got.tag_history == all_of.tag_history
        assert got.revisions == all_of.revisions and len(got.revisions) == 3
        assert all_of.layers and not got.layers
        assert list(all_of.uploads) == ["u1"] and not got.uploads
    finally:
        driver.delete(layout.root.split("/")[0])


def test_the_hint_names_a_repositorys_own_directories_only() -> None:
    layout = default_layout(LocalDriver("/nonexistent"))
    assert layout.prune_parts() is None
    prune = layout.prune_parts(layers=False, uploads=False)
    assert prune is not None
    repos = layout.repositories_dir()
    for directory in ("a/_layers", "a/b/c/_uploads"):
        assert prune(f"{repos}/{directory}"), directory
    for directory in ("a", "a/_manifests", "a/_manifests/tags/_layers", "a/_uploads/u1"):
        assert not prune(f"{repos}/{directory}"), directory
    uploads_only = layout.prune_parts(uploads=False)
    assert uploads_only is not None and not uploads_only(f"{repos}/a/_layers")


class _Walked(LocalDriver):
    """Records every directory a walk asks its prune hint about."""

    asked: list[str]

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        self.asked = []

        def recorded(directory: str) -> bool:
            self.asked.append(directory)
            return prune is not None and prune(directory)

        yield from super().walk(prefix, temporaries=temporaries, prune=recorded)


def test_a_tag_scan_does_not_walk_layers_or_uploads(tmp_path: Path) -> None:
    walked = _Walked(tmp_path)
    layout = default_layout(walked)
    write_image(layout, "app", "1")
    walked.put(layout.upload_data("app", "u1"), b"partial")
    layout.scan_repositories(layers=False, uploads=False)
    base = f"{layout.repositories_dir()}/app/"
    below = [d for d in walked.asked if d.startswith((f"{base}_layers/", f"{base}_uploads/"))]
    assert f"{base}_layers" in walked.asked and f"{base}_uploads" in walked.asked
    assert below == []
    layout.scan_repositories()
    assert any(d.startswith(f"{base}_layers/") for d in walked.asked)
