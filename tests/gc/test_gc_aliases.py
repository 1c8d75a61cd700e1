"""gc and aliases: a `_layers` link at a sha512 path that holds the sha256 digest whose data
is the blob, as distribution writes for a blob pushed by its sha512 digest. The data an
alias reaches is kept while the alias is; an alias gc deletes and then writes back holds
its target again; the data stays while an alias to it could not be deleted."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from regtool.gc import GcOptions, GcResult, collect
from regtool.layout.v2_write import write_link
from regtool.oci import Digest
from regtool.storage.base import DeleteReport, Entry, Prune
from regtool.storage.local import LocalDriver
from tests.handstore import HandStore

NOW = GcOptions(min_age=timedelta(0), settle=timedelta(0))


def gc(store: HandStore, delete_untagged: bool = False) -> GcResult:
    return collect(store.layout, "t", replace(NOW, delete_untagged=delete_untagged))


def aliased(store: HandStore, repo: str, data: bytes, canonical_link: bool = True) -> Digest:
    """Store `data` as distribution stores a blob pushed by its sha512 digest."""
    sha512, sha256 = Digest.of(data, "sha512"), Digest.of(data)
    store.driver.put(store.layout.blob_data(sha256), data)
    if canonical_link:
        write_link(store.layout, store.layout.layer_link(repo, sha256), sha256)
    write_link(store.layout, store.layout.layer_link(repo, sha512), sha256)
    return sha512


def data_of(store: HandStore, data: bytes) -> Path:
    return store.path(store.layout.blob_data(Digest.of(data)))


def test_a_kept_alias_keeps_its_data_and_link(tmp_path: Path) -> None:
    store = HandStore(tmp_path)
    layer = os.urandom(500)
    store.image_of("app", "1", aliased(store, "app", layer), len(layer))
    result = gc(store, delete_untagged=True)
    assert result.ok and result.items == [] and result.warnings == []
    assert data_of(store, layer).exists()
    assert store.path(store.layout.layer_link("app", Digest.of(layer))).exists()


def test_an_unsure_repository_keeps_what_its_aliases_reach(tmp_path: Path) -> None:
    store = HandStore(tmp_path)
    layer = os.urandom(500)
    manifest = store.image_of("app", "1", aliased(store, "app", layer, False), len(layer))
    store.path(store.layout.blob_data(manifest)).write_bytes(b"{damaged")
    result = gc(store, delete_untagged=True)
    assert result.items == [] and data_of(store, layer).exists()
    assert any("unreadable" in w for w in result.warnings)


def test_an_alias_naming_no_blob_keeps_its_repository(tmp_path: Path) -> None:
    store = HandStore(tmp_path)
    layer, stray = os.urandom(500), os.urandom(300)
    sha512 = aliased(store, "app", layer)
    store.image_of("app", "1", sha512, len(layer))
    store.blob("app", stray)  # linked, referenced by nothing
    alias = store.path(store.layout.layer_link("app", sha512))
    alias.write_bytes(b"sha256:damaged")
    result = gc(store, delete_untagged=True)
    assert result.items == []  # it may have reached any blob the repository links
    assert data_of(store, layer).exists() and data_of(store, stray).exists()
    (warning,) = result.warnings
    assert warning.startswith(f"app: _layers link of {sha512} unreadable")


def test_a_young_alias_outside_repositories_keeps_its_data(tmp_path: Path) -> None:
    store = HandStore(tmp_path)
    layer = os.urandom(500)
    aliased(store, "first-push", layer, canonical_link=False)
    old = store.path(store.layout.blob_data(Digest.of(layer)))
    os.utime(old, (1, 1))  # the data is old, its alias young: a manifest may follow
    result = collect(store.layout, "t", replace(NOW, min_age=timedelta(hours=1)))
    assert result.items == [] and old.exists()


class _ChangeDuringGc(LocalDriver):
    """Runs `change` just before the third walk of repositories/: gc deleted its links,
    and a manifest that had passed the registry's checks landed meanwhile."""

    def __init__(self, root: Path, change: Callable[[], None]) -> None:
        super().__init__(root)
        self.walks, self.change = 0, change

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        if prefix.endswith("/repositories"):
            self.walks += 1
            if self.walks == 3:
                self.change()
        return super().walk(prefix, temporaries=temporaries, prune=prune)


def test_an_alias_written_back_holds_its_target(tmp_path: Path) -> None:
    layer = os.urandom(500)
    store = HandStore(tmp_path)
    sha512 = aliased(store, "app", layer)
    manifest = store.image_of("app", "1", sha512, len(layer))
    store.driver.delete(store.layout.tag_dir("app", "1"))  # untagged: all of it goes

    def tag_again() -> None:
        write_link(store.layout, store.layout.revision_link("app", manifest), manifest)
        write_link(store.layout, store.layout.tag_current_link("app", "1"), manifest)

    store = HandStore(driver=_ChangeDuringGc(tmp_path, tag_again))
    result = gc(store, delete_untagged=True)
    assert result.ok and any("restored" in w for w in result.warnings)
    alias = tmp_path / store.layout.layer_link("app", sha512)
    assert alias.read_bytes() == str(Digest.of(layer)).encode()  # not its own digest
    assert data_of(store, layer).exists()


class _AliasStays(LocalDriver):
    """A store that refuses to delete one link."""

    def __init__(self, root: Path, kept: str) -> None:
        super().__init__(root)
        self.kept = kept

    def delete_many(self, paths: Iterable[str]) -> DeleteReport:
        asked = list(paths)
        report = super().delete_many(p for p in asked if p != self.kept)
        if self.kept in asked:
            report.failed[self.kept] = "refused"
        return report


def test_data_stays_while_an_alias_to_it_does(tmp_path: Path) -> None:
    layer = os.urandom(500)
    sha512 = aliased(HandStore(tmp_path), "app", layer)
    store = HandStore(tmp_path)
    alias = store.layout.layer_link("app", sha512)
    store = HandStore(driver=_AliasStays(tmp_path, alias))
    result = gc(store)
    assert not result.ok and set(result.failed) == {alias, store.layout.blob_data(Digest.of(layer))}
    assert data_of(store, layer).exists()
    assert (tmp_path / alias).read_bytes() == str(Digest.of(layer)).encode()
