"""Every path the layouts build, pinned: the storage formats are a contract with
distribution and the V1 registry."""

from __future__ import annotations

import pytest

from regtool.errors import NameInvalid
from regtool.layout.v1 import V1Layout
from regtool.layout.v2 import SWIFT_ROOT, V2Layout
from regtool.oci import Digest
from regtool.storage.local import LocalDriver

D = Digest.parse("sha256:" + "ab" * 32)
V1_ID = "cd" * 32


@pytest.fixture
def v2() -> V2Layout:
    return V2Layout(LocalDriver("/nonexistent"))


@pytest.mark.parametrize(
    "method, args, expected",
    [
        ("blob_data", (D,), f"docker/registry/v2/blobs/sha256/ab/{D.hex}/data"),
        (
            "layer_link",
            ("library/app", D),
            f"docker/registry/v2/repositories/library/app/_layers/sha256/{D.hex}/link",
        ),
        (
            "revision_link",
            ("a/b/c", D),
            f"docker/registry/v2/repositories/a/b/c/_manifests/revisions/sha256/{D.hex}/link",
        ),
        (
            "tag_current_link",
            ("app", "1.0"),
            "docker/registry/v2/repositories/app/_manifests/tags/1.0/current/link",
        ),
        (
            "tag_index_link",
            ("app", "1.0", D),
            f"docker/registry/v2/repositories/app/_manifests/tags/1.0/index/sha256/{D.hex}/link",
        ),
        ("upload_data", ("app", "u-1"), "docker/registry/v2/repositories/app/_uploads/u-1/data"),
        (
            "upload_started_at",
            ("app", "u-1"),
            "docker/registry/v2/repositories/app/_uploads/u-1/startedat",
        ),
        ("upload_lease", ("app", "u-1"), "docker/registry/v2/repositories/app/_uploads/u-1/lease"),
        (
            "upload_lease",
            ("app", "u-1", 2),
            "docker/registry/v2/repositories/app/_uploads/u-1/lease.2",
        ),
    ],
)
def test_v2_paths(v2: V2Layout, method: str, args: tuple[object, ...], expected: str) -> None:
    assert getattr(v2, method)(*args) == expected


def test_v2_swift_naming() -> None:
    layout = V2Layout(LocalDriver("/x"), SWIFT_ROOT)
    assert layout.blob_data(D) == f"files/docker/registry/v2/blobs/sha256/ab/{D.hex}/data"


@pytest.mark.parametrize("name", ["../etc", "app/../../x", "App", "a//b", "_uploads"])
def test_v2_refuses_names_that_escape(v2: V2Layout, name: str) -> None:
    with pytest.raises(NameInvalid):
        v2.repository_dir(name)


def test_v1_paths() -> None:
    layout = V1Layout(LocalDriver("/x"), "docker-registry")
    assert layout.image_file(V1_ID, "layer") == f"docker-registry/images/{V1_ID}/layer"
    assert layout.tag_file("exampleapp", "1.0") == (
        "docker-registry/repositories/library/exampleapp/tag_1.0"
    )
    assert layout.tag_file("team/app", "x") == "docker-registry/repositories/team/app/tag_x"


def test_v2_index_entries_sorts_repositories(v2: V2Layout) -> None:
    from regtool.storage.base import Entry

    base = "docker/registry/v2/repositories/"
    paths = [
        "team/sub/app/_manifests/tags/1.0/current/link",
        f"team/sub/app/_manifests/tags/1.0/index/sha256/{D.hex}/link",
        f"team/sub/app/_manifests/revisions/sha256/{D.hex}/link",
        f"team/sub/app/_layers/sha256/{D.hex}/link",
        "team/sub/app/_uploads/u1/startedat",
        "team/_layers/sha256/{D.hex}/link",  # no _manifests: not a repository
        "stray-file",
    ]
    repos = v2.index_entries(Entry(base + p) for p in paths)
    assert list(repos) == ["team/sub/app"]
    repo = repos["team/sub/app"]
    assert list(repo.tags) == ["1.0"]
    assert repo.revisions == {D} and repo.layers == {D}
    assert repo.tag_history == {"1.0": [D]}
    assert list(repo.uploads) == ["u1"]


E = Digest.parse("sha256:" + "ef" * 32)


@pytest.mark.parametrize(
    "history, link_size, expected",
    [
        ({D}, len(str(D)), D),  # never re-pointed: the listing tells the digest
        ({D, E}, len(str(D)), None),  # re-pointed: read the link
        ({D}, None, None),  # size unknown (Swift lists 0-byte objects without one)
        ({D}, 15, None),  # a damaged link: read it, so ls can warn
        (set(), len(str(D)), None),  # no history at all
    ],
)
def test_listed_tag_digest(
    history: set[Digest], link_size: int | None, expected: Digest | None
) -> None:
    from regtool.layout.v2 import RepositoryIndex
    from regtool.storage.base import Entry

    repo = RepositoryIndex("app", tags={"1.0": Entry("x/current/link", size=link_size)})
    if history:
        repo.tag_history["1.0"] = history
    assert repo.listed_tag_digest("1.0") == expected
