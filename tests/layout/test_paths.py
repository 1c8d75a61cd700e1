"""Every path the layouts build, pinned with its inverse: the storage formats are a
contract with distribution and the V1 registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from regtool.errors import NameInvalid
from regtool.layout.segments import segment_path, segment_set_of
from regtool.layout.v1 import V1Layout, tag_file_names
from regtool.layout.v2 import SWIFT_ROOT, RepositoryIndex, RepositoryPath, V2Layout
from regtool.layout.v2_write import manifests_dir, revisions_dir, uploads_dir
from regtool.oci import Digest
from regtool.storage.base import Entry
from regtool.storage.local import LocalDriver

D = Digest.parse("sha256:" + "ab" * 32)
D512 = Digest.parse("sha512:" + "cd" * 64)
V1_ID = "cd" * 32
R = "docker/registry/v2/repositories"


@pytest.fixture
def v2() -> V2Layout:
    return V2Layout(LocalDriver("/nonexistent"))


# (method, arguments, the path it builds, what the path reads back as)
V2_FILES: list[tuple[str, tuple[Any, ...], str, RepositoryPath | Digest]] = [
    ("blob_data", (D,), f"docker/registry/v2/blobs/sha256/ab/{D.hex}/data", D),
    ("blob_data", (D512,), f"docker/registry/v2/blobs/sha512/cd/{D512.hex}/data", D512),
    (
        "layer_link",
        ("library/app", D),
        f"{R}/library/app/_layers/sha256/{D.hex}/link",
        RepositoryPath("library/app", "layer-link", digest=D),
    ),
    (
        "revision_link",
        ("a/b/c", D),
        f"{R}/a/b/c/_manifests/revisions/sha256/{D.hex}/link",
        RepositoryPath("a/b/c", "revision-link", digest=D),
    ),
    (
        "revision_link",
        ("app", D512),
        f"{R}/app/_manifests/revisions/sha512/{D512.hex}/link",
        RepositoryPath("app", "revision-link", digest=D512),
    ),
    (
        "tag_current_link",
        ("app", "1.0"),
        f"{R}/app/_manifests/tags/1.0/current/link",
        RepositoryPath("app", "tag-current", tag="1.0"),
    ),
    (
        "tag_index_link",
        ("app", "_dev", D),
        f"{R}/app/_manifests/tags/_dev/index/sha256/{D.hex}/link",
        RepositoryPath("app", "tag-index", digest=D, tag="_dev"),
    ),
    (
        "upload_data",
        ("app", "u-1"),
        f"{R}/app/_uploads/u-1/data",
        RepositoryPath("app", "upload", upload_id="u-1", upload_file="data"),
    ),
    (
        "upload_started_at",
        ("app", "u-1"),
        f"{R}/app/_uploads/u-1/startedat",
        RepositoryPath("app", "upload", upload_id="u-1", upload_file="startedat"),
    ),
    (  # any other file in an upload's directory is the upload's (a lease, a temp file)
        "upload_lease",
        ("app", "u-1", 1),
        f"{R}/app/_uploads/u-1/lease.1",
        RepositoryPath("app", "upload", upload_id="u-1", upload_file="lease.1"),
    ),
]


@pytest.mark.parametrize(("method", "args", "path", "inverse"), V2_FILES)
def test_v2_file_paths_and_their_inverse(
    v2: V2Layout, method: str, args: tuple[Any, ...], path: str, inverse: Any
) -> None:
    assert getattr(v2, method)(*args) == path
    if isinstance(inverse, Digest):
        assert v2.blob_digest(path) == inverse
        assert v2.parse_repository_path(path) is None
    else:
        assert v2.parse_repository_path(path) == inverse
        assert v2.blob_digest(path) is None


def test_v2_link_of_each_kind(v2: V2Layout) -> None:
    assert v2.link("layer", "app", D) == v2.layer_link("app", D)
    assert v2.link("revision", "app", D) == v2.revision_link("app", D)


@pytest.mark.parametrize(
    ("method", "args", "path"),
    [
        ("blobs_dir", (), "docker/registry/v2/blobs"),
        ("repositories_dir", (), R),
        ("repository_dir", ("a/b",), f"{R}/a/b"),
        ("layers_dir", ("app",), f"{R}/app/_layers"),
        ("manifests_dir", ("app",), f"{R}/app/_manifests"),
        ("revisions_root", ("app",), f"{R}/app/_manifests/revisions"),
        ("revisions_dir", ("app",), f"{R}/app/_manifests/revisions/sha256"),
        ("revisions_dir", ("app", "sha512"), f"{R}/app/_manifests/revisions/sha512"),
        ("tags_dir", ("app",), f"{R}/app/_manifests/tags"),
        ("tag_dir", ("app", "1.0"), f"{R}/app/_manifests/tags/1.0"),
        ("uploads_dir", ("app",), f"{R}/app/_uploads"),
        ("upload_dir", ("app", "u-1"), f"{R}/app/_uploads/u-1"),
        ("upload_lease", ("app", "u-1"), f"{R}/app/_uploads/u-1/lease"),
        ("upload_lease", ("app", "u-1", 2), f"{R}/app/_uploads/u-1/lease.2"),
    ],
)
def test_v2_directories(v2: V2Layout, method: str, args: tuple[Any, ...], path: str) -> None:
    assert getattr(v2, method)(*args) == path


@pytest.mark.parametrize(
    ("function", "method"),
    [
        (revisions_dir, "revisions_dir"),
        (uploads_dir, "uploads_dir"),
        (manifests_dir, "manifests_dir"),
    ],
)
def test_the_writers_directory_names_are_the_layouts(
    v2: V2Layout, function: Callable[..., str], method: str
) -> None:
    assert function(v2, "team/app") == getattr(v2, method)("team/app")


@pytest.mark.parametrize(
    "path",
    [
        f"docker/registry/v2/blobs/sha256/ac/{D.hex}/data",  # wrong fan-out directory
        f"docker/registry/v2/blobs/sha256/ab/{D.hex}/other",
        "docker/registry/v2/blobs/sha256/ab/abab/data",  # too short for sha256
        f"docker/registry/v2/blobs/md5/ab/{D.hex}/data",
        f"elsewhere/blobs/sha256/ab/{D.hex}/data",
    ],
)
def test_v2_paths_that_are_no_blob(v2: V2Layout, path: str) -> None:
    assert v2.blob_digest(path) is None


@pytest.mark.parametrize(
    "path",
    [
        f"{R}/app/_layers/sha256/{D.hex}/data",
        f"{R}/app/_layers/sha256/xyz/link",
        f"{R}/app/_manifests/tags/1.0/current/data",
        f"{R}/app/_manifests/other",
        f"{R}/app/no-underscore/link",
        f"{R}/_uploads/u/data",  # no repository name before the first `_` component
        "docker/registry/v2/blobs/sha256/ab/x/data",
    ],
)
def test_v2_paths_of_no_known_shape(v2: V2Layout, path: str) -> None:
    assert v2.parse_repository_path(path) is None


def test_v2_swift_naming() -> None:
    layout = V2Layout(LocalDriver("/x"), SWIFT_ROOT)
    assert layout.blob_data(D) == f"files/docker/registry/v2/blobs/sha256/ab/{D.hex}/data"
    assert layout.blob_digest(layout.blob_data(D)) == D
    assert layout.segments_dir() == "segments"
    assert V2Layout(LocalDriver("/x"), "pre/" + SWIFT_ROOT).segments_dir() == "pre/segments"
    assert V2Layout(LocalDriver("/x")).segments_dir() is None


@pytest.mark.parametrize(
    ("set_path", "number", "path"),
    [
        ("segments/2f6/46f6" + "a" * 40, 1, "segments/2f6/46f6" + "a" * 40 + "/0000000000000001"),
        ("pre/segments/abc/" + "d" * 37, 12, "pre/segments/abc/" + "d" * 37 + "/0000000000000012"),
    ],
)
def test_segment_paths_and_their_inverse(set_path: str, number: int, path: str) -> None:
    assert segment_path(set_path, number) == path
    segments_dir = set_path.rsplit("/", 2)[0]
    assert segment_set_of(segments_dir, path) == set_path
    assert segment_set_of("elsewhere", path) is None
    assert segment_set_of(segments_dir, set_path + "/notes.txt") is None


@pytest.mark.parametrize("name", ["../etc", "app/../../x", "App", "a//b", "_uploads"])
def test_v2_refuses_names_that_escape(v2: V2Layout, name: str) -> None:
    with pytest.raises(NameInvalid):
        v2.repository_dir(name)


def test_v1_paths_and_their_inverse() -> None:
    layout = V1Layout(LocalDriver("/x"), "docker-registry")
    image = layout.image_file(V1_ID, "layer")
    assert image == f"docker-registry/images/{V1_ID}/layer"
    assert layout.split_image_path(image) == (V1_ID, "layer")
    assert layout.split_image_path(f"docker-registry/images/{V1_ID}") is None
    assert layout.split_image_path(f"docker-registry/images/{V1_ID}/a/b") is None
    assert layout.split_image_path("docker-registry/images/not-an-id/json") is None
    for name, tag, tag_file, json_file in (
        ("exampleapp", "1.0", "tag_1.0", "tag1.0_json"),
        ("team/app", "x", "tag_x", "tagx_json"),
        ("app", "_dev", "tag__dev", "tag_dev_json"),
        ("app", "dev_json", "tag_dev_json", "tagdev_json_json"),
        ("app", "_", "tag__", "tag__json"),
    ):
        repo = f"docker-registry/repositories/{'library/' if '/' not in name else ''}{name}"
        path = layout.tag_file(name, tag)
        assert path == f"{repo}/{tag_file}"
        assert layout.tag_json_file(name, tag) == f"{repo}/{json_file}"
        repo_name, file_name = layout.split_repository_path(path) or ("", "")
        assert repo == f"docker-registry/repositories/{repo_name}"
        assert tag in tag_file_names(file_name)
        assert tag_file_names(json_file)[1] in (tag, None)


@pytest.mark.parametrize(
    ("file_name", "names"),
    [
        ("tag_latest", ("latest", None)),
        ("tag__dev", ("_dev", None)),
        ("tag_dev_json", ("dev_json", "_dev")),  # tag dev_json, or the metadata of _dev
        ("tag__json", ("_json", "_")),
        ("taglatest_json", (None, None)),  # metadata of `latest`: not a tag file
        ("tag_", (None, None)),
        ("_index_images", (None, None)),
        ("json", (None, None)),
    ],
)
def test_v1_tag_file_names(file_name: str, names: tuple[str | None, str | None]) -> None:
    assert tag_file_names(file_name) == names


def test_v2_index_entries_sorts_repositories(v2: V2Layout) -> None:
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


def test_v2_index_entries_without_layers_keeps_the_rest(v2: V2Layout) -> None:
    """What lists tags passes `_layers` over: everything else is as a full index has it
    (a tag may itself be named `_layers`: `[A-Za-z0-9_]` may start it)."""
    base = "docker/registry/v2/repositories/"
    paths = [
        "team/app/_manifests/tags/_layers/current/link",
        f"team/app/_manifests/tags/_layers/index/sha256/{D.hex}/link",
        f"team/app/_manifests/revisions/sha256/{D.hex}/link",
        f"team/app/_layers/sha256/{D.hex}/link",
        f"team/app/_layers/sha256/{E.hex}/link",
        "team/app/_uploads/u1/startedat",
        f"only/_layers/sha256/{D.hex}/link",
        f"_x/_manifests/revisions/sha256/{D.hex}/link",  # no name before the `_` one
    ]
    entries = [Entry(base + p, size=3, checksum="0" * 32) for p in paths]  # every link bad
    full = v2.index_entries(entries, include_all=True)
    lean = v2.index_entries(entries, include_all=True, layers=False)
    assert sorted(full) == ["only", "team/app"] and list(lean) == ["team/app"]
    kept, all_of = lean["team/app"], full["team/app"]
    assert all_of.layers == {D, E} and kept.layers == set()
    assert {k: v for k, v in all_of.bad_links.items() if k[0] == "revision"} == kept.bad_links
    assert kept.tags == all_of.tags and list(kept.tags) == ["_layers"]
    assert kept.tag_history == all_of.tag_history == {"_layers": [D]}
    assert kept.revisions == all_of.revisions == {D}
    assert kept.uploads == all_of.uploads
    assert v2.split_repository_path(base + paths[0]) == (
        "team/app",
        ["_manifests", "tags", "_layers", "current", "link"],
    )


E = Digest.parse("sha256:" + "ef" * 32)


@pytest.mark.parametrize(
    ("history", "link_size", "expected"),
    [
        ([D], len(str(D)), D),  # never re-pointed: the listing tells the digest
        ([D, E], len(str(D)), None),  # re-pointed: read the link
        ([D], None, None),  # size unknown
        ([D], 15, None),  # a damaged link: read it, so ls can warn
        ([], len(str(D)), None),  # no history at all
    ],
)
def test_listed_tag_digest_by_size(
    history: list[Digest], link_size: int | None, expected: Digest | None
) -> None:
    from regtool.layout.v2 import LinkStat

    repo = RepositoryIndex("app", tags={"1.0": LinkStat(link_size, None)})
    if history:
        repo.tag_history["1.0"] = history
    assert repo.listed_tag_digest("1.0") == expected
    assert repo.certain_tag_digest("1.0") is None  # a size is never certain


def test_appended_segments_belong_to_their_set() -> None:
    set_path = "segments/abc/" + "d" * 37
    assert segment_set_of("segments", f"{set_path}/0000000020971520.0a1b2c3d") == set_path
    for bad in ("0000000020971520.", "0000000020971520.0A1B2C3D", "0000000020971520.0a1b2c3d9"):
        assert segment_set_of("segments", f"{set_path}/{bad}") is None
