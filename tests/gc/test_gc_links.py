"""gc and link files that do not name their blob: such a link never makes gc delete what it
would keep, a kept one is reported (the registry cannot serve that blob there), and one
whose blob is unwanted goes like any stale link."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from regtool.gc import GcOptions, GcResult, collect
from tests.handstore import HandStore

NOW = GcOptions(min_age=timedelta(0), settle=timedelta(0))


def gc(store: HandStore, delete_untagged: bool = False) -> GcResult:
    return collect(store.layout, "t", replace(NOW, delete_untagged=delete_untagged))


def test_a_wanted_blob_behind_an_empty_link_is_kept_and_reported(tmp_path: Path) -> None:
    store = HandStore(tmp_path)
    image = store.image("app", "1", layers=2)
    link = store.path(store.layout.layer_link("app", image.layers[0]))
    link.write_bytes(b"")
    result = gc(store)
    assert result.ok and result.items == []
    assert link.exists() and store.path(store.layout.blob_data(image.layers[0])).exists()
    (warning,) = result.warnings
    assert warning == (
        f"app: the _layers link of {image.layers[0]} is empty: the registry cannot serve it "
        "there; kept (see regtool verify)"
    )


def test_a_kept_manifest_behind_a_truncated_revision_link(tmp_path: Path) -> None:
    store = HandStore(tmp_path)
    image = store.image("app", "1")
    link = store.path(store.layout.revision_link("app", image.digest))
    link.write_bytes(link.read_bytes()[:-3])
    result = gc(store, delete_untagged=True)
    assert result.items == []
    assert result.warnings == [
        f"app: the revision link of {image.digest} holds 68 bytes, not the digest: the "
        "registry cannot serve it there; kept (see regtool verify)"
    ]


def test_an_empty_link_to_an_unwanted_blob_goes_with_it(tmp_path: Path) -> None:
    store = HandStore(tmp_path)
    store.image("app", "1")
    stray = store.blob("app", b"no manifest references this")
    link = store.path(store.layout.layer_link("app", stray))
    link.write_bytes(b"")
    result = gc(store)
    assert {(i.kind, i.name) for i in result.items} == {
        ("layer-link", str(stray)),
        ("blob", str(stray)),
    }
    assert result.ok and result.warnings == []
    assert not link.exists() and not store.path(store.layout.blob_data(stray)).exists()


def test_an_unsure_repository_keeps_what_its_bad_links_name(tmp_path: Path) -> None:
    store = HandStore(tmp_path)
    image = store.image("app", "1")
    stray = store.blob("app", b"linked, and maybe wanted by the damaged manifest")
    store.path(store.layout.layer_link("app", stray)).write_bytes(b"")
    store.path(store.layout.blob_data(image.digest)).write_bytes(b"{not json")
    result = gc(store)
    assert result.items == []  # a damaged manifest keeps every blob its repository links
    assert store.path(store.layout.blob_data(stray)).exists()
    assert any("unreadable" in w for w in result.warnings)
    assert any(f"_layers link of {stray} is empty" in w for w in result.warnings)
