"""A directory below `repositories/` whose path is not a repository name (capitals, a name
that is not UTF-8) is no repository distribution can serve. Every tool skips it with a
warning naming it, and goes on with the rest; gc deletes nothing in it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from regtool.gc import GcOptions, collect
from regtool.layout.v2 import FILESYSTEM_ROOT, LinkStat, RepositoryIndex, V2Layout
from regtool.oci import Digest
from regtool.storage.base import Entry, Prune
from regtool.storage.local import LocalDriver
from tests.handstore import HandImage, HandStore

BAD = b"bad\xff"  # not UTF-8: the local driver shows it as 'bad\udcff'
NAMES = ("Upper", os.fsdecode(BAD))


def files_below(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.fixture
def store(tmp_path: Path) -> tuple[HandStore, HandImage, dict[str, dict[str, bytes]]]:
    """`app` a repository; `Upper` and `bad\\xff` copies of another image's repository,
    whose blobs nothing else links, with an old temp file and an old untagged revision;
    returns what is below each bad directory."""
    store = HandStore(tmp_path)
    app = store.image("app", "1")
    store.image("other", "1")
    store.image("other", "old")
    store.driver.delete(store.layout.tag_dir("other", "old"))  # untagged
    repos = tmp_path / store.layout.repositories_dir()
    (repos / "other" / "_layers" / ".regtool-tmp-left").write_bytes(b"x" * 10)
    (repos / "other" / "_uploads" / "u1").mkdir(parents=True)
    (repos / "other" / "_uploads" / "u1" / "data").write_bytes(b"y" * 10)
    for p in (repos / "other").rglob("*"):
        os.utime(p, (1_000_000_000, 1_000_000_000))  # 2001: older than any --min-age
    shutil.copytree(repos / "other", repos / "Upper")
    os.rename(bytes(repos / "other"), bytes(repos) + b"/" + BAD)
    return store, app, {name: files_below(repos / name) for name in NAMES}


def test_every_tool_skips_them_with_a_warning(cli, store) -> None:
    hand, app, below = store
    root = str(hand.driver.root)
    named = [f"directory {name!r} in repositories/" for name in NAMES]

    listed = cli("ls", root)
    assert listed.exit_code == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:2]] == ["app"]
    assert "Upper" not in listed.stdout and "bad" not in listed.stdout
    for words in named:
        assert f"warning: {words}: not a valid repository name" in listed.stderr

    verified = cli("verify", "--all", "-l", root)
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    assert "app" in verified.stdout and "Upper" not in verified.stdout
    assert all(f"warning: {words}" in verified.stderr for words in named)
    document = cli.json("verify", "--all", "-l", root)
    assert len(document["warnings"]) == 2

    for run in (["--dry-run"], []):
        collected = cli(
            "gc", *run, "--min-age", "0", "--settle", "0s", "--delete-untagged", "-l", root
        )
        assert collected.exit_code == 0, collected.stdout + collected.stderr
        for words in named:
            assert f"warning: {words}: not a valid repository name" in collected.stderr
            assert "gc deletes nothing in it" in collected.stderr
    repos = hand.driver.root / hand.layout.repositories_dir()
    for name, files in below.items():
        assert files_below(repos / name) == files  # temp file, upload, links: all there
    # the blobs only they link stay: renaming the directory gives back whole images
    for name in NAMES:
        for links in ("_layers/sha256", "_manifests/revisions/sha256"):
            for hexdir in (repos / name / links).iterdir():
                digest = Digest.parse(f"sha256:{hexdir.name}")
                assert hand.driver.exists(hand.layout.blob_data(digest)), (name, digest)
    assert hand.layout.tag_digest("app", "1") == app.digest
    assert all(hand.driver.exists(hand.layout.blob_data(d)) for d in app.blobs)


def test_the_layout_sets_them_apart() -> None:
    def entry(path: str) -> Entry:
        return Entry(f"docker/registry/v2/repositories/{path}", size=71)

    layout = HandStore(driver=LocalDriver(Path("/nonexistent"))).layout
    found = layout.index_entries(
        [
            entry("app/_manifests/tags/1/current/link"),
            entry("Upper/_manifests/tags/1/current/link"),
            entry("app/Sub/_manifests/tags/1/current/link"),
            entry("bad\udcff/_uploads/u1/data"),
        ],
        include_all=True,
    )
    assert list(found) == ["app"]
    assert sorted(found.skipped) == ["Upper", "app/Sub", "bad\udcff"]
    assert isinstance(found.skipped["Upper"], RepositoryIndex)
    assert found.skipped["Upper"].tags == {"1": LinkStat(71, None)}
    assert found.skipped_warnings("kept")[0] == (
        "directory 'Upper' in repositories/: not a valid repository name, no registry "
        "serves it; kept"
    )


class _LinkDuringGc(LocalDriver):
    """Runs `write` just before the `at`-th walk of repositories/ (2: gc's re-check
    before deleting; 3: the one after it deleted links)."""

    def __init__(self, root: Path, write: Callable[[], None], at: int) -> None:
        super().__init__(root)
        self.walks, self.write, self.at = 0, write, at

    def walk(
        self, prefix: str = "", *, temporaries: bool = False, prune: Prune | None = None
    ) -> Iterator[Entry]:
        if prefix.endswith("/repositories"):
            self.walks += 1
            if self.walks == self.at:
                self.write()
        return super().walk(prefix, temporaries=temporaries, prune=prune)


@pytest.mark.parametrize("at", [2, 3])
def test_a_link_written_there_during_gc_keeps_its_blob(tmp_path: Path, at: int) -> None:
    hand = HandStore(tmp_path)
    hand.image("app", "1")
    orphan = Digest.of(b"nothing links me yet")
    hand.driver.put(hand.layout.blob_data(orphan), b"nothing links me yet")
    link = tmp_path / hand.layout.repositories_dir() / "Upper/_layers/sha256" / orphan.hex

    def write() -> None:
        link.mkdir(parents=True)
        (link / "link").write_text(str(orphan))

    driver = _LinkDuringGc(tmp_path, write, at)
    result = collect(
        V2Layout(driver, FILESYSTEM_ROOT),
        "t",
        GcOptions(min_age=timedelta(0), settle=timedelta(0)),
    )
    assert result.ok and driver.walks == 3
    assert hand.driver.exists(hand.layout.blob_data(orphan))
