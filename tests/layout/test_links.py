"""What a listing tells of link files: a Swift listing's MD5 settles every link, a local or
SFTP listing's size only the empty and truncated ones."""

from __future__ import annotations

import hashlib

import pytest

from regtool.layout.v2 import (
    LinkStat,
    RepositoryIndex,
    V2Layout,
    describe_link_content,
    link_checksum,
    link_content,
    linked_data,
    listed_link_names,
)
from regtool.oci import Digest
from regtool.storage.base import Entry
from regtool.storage.local import LocalDriver

D = Digest.parse("sha256:" + "ab" * 32)
E = Digest.parse("sha256:" + "ef" * 32)
D512 = Digest.parse("sha512:" + "cd" * 64)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_link_content_and_checksum() -> None:
    assert link_content(D) == b"sha256:" + b"ab" * 32
    assert link_checksum(D) == md5(b"sha256:" + b"ab" * 32)


@pytest.mark.parametrize(
    ("entry", "digest", "verdict"),
    [
        # Swift: the MD5 tells
        (Entry("l", size=71, checksum=md5(link_content(D))), D, True),
        (Entry("l", size=71, checksum=md5(link_content(E))), D, False),  # another blob
        (Entry("l", size=None, checksum=md5(b"")), D, False),  # empty (lists without a size)
        # local, SFTP: only the size
        (Entry("l", size=71), D, None),  # the right length: read it
        (Entry("l", size=0), D, False),
        (Entry("l", size=70), D, False),
        (Entry("l", size=72), D, False),  # a newline too many
        (Entry("l", size=None), D, None),
        # a link at a sha512 path may hold the canonical sha256 digest: read it
        (Entry("l", size=71), D512, None),
        (Entry("l", size=71, checksum=md5(link_content(D))), D512, None),
        (Entry("l", size=135, checksum=md5(link_content(D512))), D512, True),
    ],
)
def test_listed_link_names(entry: Entry, digest: Digest, verdict: bool | None) -> None:
    assert listed_link_names(entry, digest) is verdict


def test_linked_data_follows_aliases() -> None:
    assert linked_data(D, D) == D
    assert linked_data(D, E) is None  # another blob
    assert linked_data(D512, D) == D  # distribution's alias to the canonical digest
    assert linked_data(D512, D512) == D512  # stored under its own digest (regtool)
    assert linked_data(D, D512) is None  # a canonical path never holds an alias


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "nothing (0 bytes)"),
        (link_content(E), "sha256:efefefefefef…, another blob"),
        (b"sha256:abab\n", "12 bytes that are not a digest"),
    ],
)
def test_describe_link_content(data: bytes, words: str) -> None:
    assert words in describe_link_content(data)


def _index(entries: list[Entry]) -> RepositoryIndex:
    layout = V2Layout(LocalDriver("/nonexistent"))
    base = layout.repository_dir("app")
    return layout.index_entries(
        [Entry(f"{base}/_manifests/revisions/sha256/{E.hex}/link", size=0)]
        + [Entry(f"{base}/{e.path}", size=e.size, checksum=e.checksum) for e in entries]
    )["app"]


def test_index_records_links_the_listing_shows_wrong() -> None:
    repo = _index(
        [
            Entry(f"_layers/sha256/{D.hex}/link", size=0),
            Entry(f"_layers/sha256/{E.hex}/link", size=71),
        ]
    )
    # every link counts by its path (what it could keep, gc keeps) ...
    assert repo.layers == {D, E} and repo.revisions == {E}
    # ... but those shown wrong are known, and the others need a read
    assert set(repo.bad_links) == {("layer", D), ("revision", E)}
    assert repo.unconfirmed_links
    assert repo.listed_link_names("layer", D) is False
    assert repo.listed_link_names("layer", E) is None
    assert repo.listed_link_names("layer", D512) is False  # no such link


def test_index_with_checksums_needs_no_read() -> None:
    repo = _index(
        [
            Entry(f"_layers/sha256/{D.hex}/link", size=71, checksum=link_checksum(D)),
            Entry(f"_layers/sha256/{E.hex}/link", size=71, checksum=link_checksum(D)),
        ]
    )
    assert not repo.unconfirmed_links
    assert repo.listed_link_names("layer", D) is True
    assert repo.listed_link_names("layer", E) is False


@pytest.mark.parametrize(
    ("history", "checksum", "expected"),
    [
        ([D], link_checksum(D), D),
        ([D, E], link_checksum(E), E),  # re-pointed: the checksum still tells
        ([D, E], md5(b""), None),  # an empty current link: read it, to report it
        ([D], link_checksum(E), None),  # names a digest outside its history: read it
    ],
)
def test_listed_tag_digest_by_checksum(
    history: list[Digest], checksum: str, expected: Digest | None
) -> None:
    repo = RepositoryIndex("app", tags={"1.0": LinkStat(71, None, checksum)})
    repo.tag_history["1.0"] = history
    assert repo.listed_tag_digest("1.0") == expected
    assert repo.certain_tag_digest("1.0") == expected  # a checksum is certain
